"""What surrounds the domain: logging, database set-up, and later caching, limits, security, monitoring."""
