"""What the page cache knows of the catalogue: its domains, their lifetimes, and the tables behind each.

A cached view names every domain it shows (`@endpoint(..., cache=("products", "offers", ...))`); a commit that
touched one of a domain's tables moves that domain's generation, and with it the key of every page showing it.
Dependents therefore need no list of their own: a package page names "products" because it shows its items'
names, so a product rename reaches it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

# The first domain a view names picks its lifetime (the CACHE_TTL_* setting).
TTL_SETTINGS = {
    "products": "CACHE_TTL_PRODUCTS",
    "packages": "CACHE_TTL_PACKAGES",
    "taxonomy": "CACHE_TTL_CATEGORIES",
    "offers": "CACHE_TTL_OFFERS",
    "customizations": "CACHE_TTL_PRODUCTS",
    "reviews": "CACHE_TTL_PRODUCTS",
}


@dataclass(frozen=True)
class Watch:
    """How changes to one table reach a domain. `inserts=False`: a new row shows nowhere until something else
    (a product's image list, a review) points at it. `columns`: only updates of these columns count."""

    domain: str
    inserts: bool = True
    columns: frozenset[str] | None = None


WATCHED_TABLES: dict[str, Watch] = {
    "products": Watch("products"),
    "product_materials": Watch("products"),
    "product_images": Watch("products"),
    "product_customizations": Watch("products"),
    "packages": Watch("packages"),
    "package_items": Watch("packages"),
    "package_images": Watch("packages"),
    "package_customizations": Watch("packages"),
    "categories": Watch("taxonomy"),
    "subcategories": Watch("taxonomy"),
    "brands": Watch("taxonomy"),
    "materials": Watch("taxonomy"),
    "offers": Watch("offers"),
    "customizations": Watch("customizations"),
    "reviews": Watch("reviews"),
    "uploads": Watch("uploads", inserts=False),
    # Review lists show their authors' usernames; a sign-in (last_login_at) must not empty them.
    "users": Watch("users", inserts=False, columns=frozenset({"username"})),
}

DOMAINS = frozenset(watch.domain for watch in WATCHED_TABLES.values())


def check_domains(domains: Sequence[str]) -> None:
    """Refuse a cache declaration naming an unknown domain, or leading with one that has no lifetime."""
    unknown = sorted(set(domains) - DOMAINS)
    if unknown:
        raise ValueError(f"unknown cache domains {unknown}; known: {sorted(DOMAINS)}")
    if domains and domains[0] not in TTL_SETTINGS:
        raise ValueError(f"a cached view must name one of {sorted(TTL_SETTINGS)} first (it picks the lifetime)")

# What each cached page shows, for the views' `cache=` declarations (first: the domain that picks the lifetime).
PRODUCT_PAGE = ("products", "offers", "taxonomy", "customizations", "uploads")
PACKAGE_PAGE = ("packages", "products", "offers", "taxonomy", "customizations", "uploads")
CATEGORY_PAGE = ("taxonomy", "uploads")
TAXONOMY_PAGE = ("taxonomy",)
OFFER_PAGE = ("offers", "products", "packages")  # an offer lists the ids of its products and packages
CUSTOMIZATION_PAGE = ("customizations",)
# A review list is 404 once its item is withdrawn, and shows its authors' usernames.
PRODUCT_REVIEWS_PAGE = ("reviews", "users", "products")
PACKAGE_REVIEWS_PAGE = ("reviews", "users", "packages")
SEARCH_PAGE = ("products", "packages", "offers", "taxonomy", "customizations", "uploads")
HOME_PAGE = ("products", "offers", "taxonomy", "customizations", "uploads")
EXPLORE_PAGE = ("products", "taxonomy")
