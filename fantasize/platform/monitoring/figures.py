"""The figures of a window: counters that add up across time slots and instances, and what is read from them.

A window's whole state is a flat mapping of counter name -> integer, so merging two windows (two time slots, two
instances, this process's unsent part and what Redis holds) is adding their counters, which Redis does for us with
HINCRBY. Names:

- `n`: requests; `us`: the sum of their durations in microseconds; `e`: those answered 5xx; `slow`: those slower
  than SLOW_REQUEST_THRESHOLD
- `s:<status>`: requests per status code
- `r:<METHOD /rule>`, `u:<METHOD /rule>`: requests and summed microseconds per route template
- `h:<bucket>`: requests per duration bucket (see `bucket_of`), from which the percentiles are read

Percentiles come from a histogram of fixed, geometrically growing buckets: bucket i holds durations in
(LOWEST_MS * RATIO**(i-1), LOWEST_MS * RATIO**i] (bucket 0 everything up to LOWEST_MS, the last everything above
the highest edge). A percentile is the geometric middle of the bucket that holds its rank (nearest rank), so the
figure reported is within a factor sqrt(RATIO) (about 2.5 %) of a duration that was really measured there, or
under LOWEST_MS for bucket 0 (reported as LOWEST_MS / 2). Durations above HIGHEST_MS (10 minutes) are reported as
HIGHEST_MS. Buckets, unlike a reservoir, merge exactly across instances and slots.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

LOWEST_MS = 0.1
HIGHEST_MS = 600_000.0
RATIO = 1.05
_LOG_RATIO = math.log(RATIO)
LAST_BUCKET = math.ceil(math.log(HIGHEST_MS / LOWEST_MS) / _LOG_RATIO)
TOP_ENDPOINTS = 10


def bucket_of(ms: float) -> int:
    if ms <= LOWEST_MS:
        return 0
    return min(LAST_BUCKET, math.ceil(math.log(ms / LOWEST_MS) / _LOG_RATIO))


def bucket_value(bucket: int) -> float:
    """The duration (ms) a bucket reports: its geometric middle."""
    if bucket <= 0:
        return LOWEST_MS / 2
    if bucket >= LAST_BUCKET:
        return HIGHEST_MS
    return LOWEST_MS * RATIO ** (bucket - 0.5)


def count(figures: Counter, method: str, route: str, status: int, seconds: float, slow: bool) -> None:
    """Add one request to `figures` (the caller holds whatever lock guards them)."""
    us = int(seconds * 1_000_000)
    endpoint = f"{method} {route}"
    figures["n"] += 1
    figures["us"] += us
    figures[f"s:{status}"] += 1
    figures[f"r:{endpoint}"] += 1
    figures[f"u:{endpoint}"] += us
    figures[f"h:{bucket_of(seconds * 1000)}"] += 1
    if status >= 500:
        figures["e"] += 1
    if slow:
        figures["slow"] += 1


def merged(parts: Iterable[Mapping[str, Any]]) -> Counter:
    """The sum of several figures; values read from Redis arrive as bytes or strings of digits."""
    total: Counter = Counter()
    for part in parts:
        for name, value in part.items():
            total[name.decode() if isinstance(name, bytes) else name] += int(value)
    return total


def percentile(histogram: list[tuple[int, int]], total: int, percent: float) -> float:
    """Nearest rank over (bucket, count) pairs sorted by bucket: the bucket of the ceil(percent% * total)-th
    fastest request."""
    if total <= 0:
        return 0.0
    rank = max(1, math.ceil(percent / 100 * total))
    seen = 0
    for bucket, number in histogram:
        seen += number
        if seen >= rank:
            return bucket_value(bucket)
    return bucket_value(histogram[-1][0]) if histogram else 0.0


def _ms(value: float) -> float:
    return round(value, 2)


def report(figures: Mapping[str, int], seconds: float) -> dict[str, Any]:
    """The metrics of API.md "Monitoring" over `figures` that cover `seconds` of time (the rate's divisor)."""
    total = figures.get("n", 0)
    histogram = sorted((int(name[2:]), number) for name, number in figures.items()
                       if name.startswith("h:") and number > 0)
    statuses = {name[2:]: number for name, number in figures.items() if name.startswith("s:") and number > 0}
    routes = [(name[2:], number) for name, number in figures.items() if name.startswith("r:") and number > 0]
    routes.sort(key=lambda item: (-item[1], item[0]))
    top = [{"endpoint": endpoint, "count": number,
            "averageResponseTime": _ms(figures.get(f"u:{endpoint}", 0) / number / 1000)}
           for endpoint, number in routes[:TOP_ENDPOINTS]]
    return {
        "totalRequests": total,
        "averageResponseTime": _ms(figures.get("us", 0) / total / 1000) if total else 0.0,
        "p50ResponseTime": _ms(percentile(histogram, total, 50)),
        "p95ResponseTime": _ms(percentile(histogram, total, 95)),
        "p99ResponseTime": _ms(percentile(histogram, total, 99)),
        "errorRate": _ms(figures.get("e", 0) / total * 100) if total else 0.0,
        "slowRequests": figures.get("slow", 0),
        "requestsPerSecond": _ms(total / seconds) if seconds > 0 else 0.0,
        "statusCodes": dict(sorted(statuses.items())),
        "topEndpoints": top,
    }
