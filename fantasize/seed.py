"""What a fresh install gets from the CLI: the demo shop (`flask seed`) and administrators (`flask create-admin`).

The demo shop is planned first from a seeded random generator (pure data, the same plan for the same seed),
then applied get-or-create by unique name or email in one transaction: a second run finds everything and
adds nothing.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, TypeVar

from marshmallow import ValidationError, validate
from sqlalchemy import select

from fantasize.errors import Conflict
from fantasize.extensions import db
from fantasize.models import (
    Brand,
    Category,
    Customization,
    Material,
    Offer,
    Package,
    PackageItem,
    Product,
    ProductMaterial,
    SubCategory,
    User,
)
from fantasize.models.base import utcnow
from fantasize.services.accounts import normalise_email
from fantasize.services.common import commit, slugify
from fantasize.services.passwords import hash_password

T = TypeVar("T")

DEFAULT_SEED = 42
DEMO_CUSTOMER_PASSWORD = "fantasize-demo"
DEMO_CUSTOMERS = ("customer1@fantasize.local", "customer2@fantasize.local", "customer3@fantasize.local")
PRODUCT_COUNT = 200
PACKAGE_COUNT = 20
LOW_STOCK = 5
PASSWORD_LENGTH = (8, 128)

# category -> subcategory -> the kinds of thing sold there (product names are "<adjective> <kind>").
CATALOGUE: dict[str, dict[str, tuple[str, ...]]] = {
    "Jewelry": {
        "Necklaces": ("Necklace", "Pendant", "Locket"),
        "Bracelets": ("Bracelet", "Bangle", "Anklet"),
        "Earrings": ("Earrings", "Ear Cuffs"),
        "Rings": ("Ring", "Band"),
    },
    "Home Decor": {
        "Candles": ("Candle", "Candle Set"),
        "Vases": ("Vase", "Bud Vase"),
        "Wall Art": ("Wall Clock", "Photo Frame", "Mirror"),
    },
    "Drinkware": {"Mugs": ("Mug", "Teacup"), "Bottles": ("Water Bottle", "Tumbler", "Flask")},
    "Stationery": {
        "Notebooks": ("Notebook", "Journal", "Planner"),
        "Cards": ("Greeting Card", "Postcard Set"),
        "Pens": ("Pen Set", "Fountain Pen"),
    },
    "Flowers & Plants": {"Bouquets": ("Bouquet", "Flower Box"), "Succulents": ("Succulent", "Terrarium", "Bonsai")},
    "Toys & Games": {
        "Plush Toys": ("Teddy Bear", "Plush Bunny"),
        "Puzzles": ("Jigsaw Puzzle", "Puzzle Cube"),
        "Board Games": ("Board Game", "Card Game"),
    },
    "Accessories": {
        "Bags": ("Tote Bag", "Backpack"),
        "Wallets": ("Wallet", "Card Holder"),
        "Keychains": ("Keychain",),
        "Scarves": ("Scarf", "Bandana"),
    },
    "Personalised Gifts": {"Engraved": ("Name Plaque", "Engraved Box"), "Printed": ("Star Map", "Photo Cushion")},
    "Sweets & Treats": {
        "Chocolates": ("Chocolate Box", "Truffle Set"),
        "Hampers": ("Gift Hamper",),
        "Cookies": ("Cookie Tin", "Candy Jar"),
    },
    "Art & Prints": {"Posters": ("Poster",), "Canvas": ("Canvas Print",), "Sketches": ("Art Print", "Sketch")},
}
ADJECTIVES = (
    "Golden", "Silver", "Rustic", "Vintage", "Classic", "Floral", "Starry", "Minimal", "Handmade", "Velvet",
    "Midnight", "Blush", "Ocean", "Forest", "Sunny", "Royal", "Cozy", "Little", "Lucky", "Bohemian",
)
BRANDS = (
    "Luna & Co", "Maple Studio", "Petal Works", "Northern Craft", "Little Joy", "Atelier Nova", "Golden Hour",
    "Paper Fox",
)
MATERIALS = ("Sterling Silver", "Gold-Plated Brass", "Ceramic", "Organic Cotton", "Oak Wood", "Recycled Glass")
# Each split adds up to 100.
MATERIAL_SPLITS = {1: ((100,),), 2: ((50, 50), (60, 40), (70, 30), (80, 20)), 3: ((40, 40, 20), (50, 30, 20))}
CUSTOMIZATIONS = (
    ("Gift Wrap", "button", (("Classic", "classic"), ("Festive", "festive"), ("Kraft", "kraft"))),
    ("Size", "button", (("Small", "S"), ("Medium", "M"), ("Large", "L"))),
    ("Colour", "button", (("Gold", "gold"), ("Silver", "silver"), ("Rose Gold", "rose-gold"))),
    ("Engraving", "text", (("maxLength", "20"),)),
    ("Gift Message", "text", (("maxLength", "200"),)),
    ("Name Print", "text", (("maxLength", "12"),)),
    ("Photo Print", "image", (("maxSizeMb", "5"),)),
    ("Custom Artwork", "image", (("maxSizeMb", "5"),)),
    ("Logo", "image", (("maxSizeMb", "2"),)),
)
# title, discount, window start and end in days from now: three current, one expired, one in the future.
OFFERS = (
    ("Spring Bloom Sale", 15, -10, 20),
    ("Jewelry Week", 25, -2, 5),
    ("Gift Box Deals", 10, -30, 60),
    ("Winter Clearance", 40, -90, -30),
    ("Summer Preview", 20, 30, 60),
)
PACKAGE_THEMES = (
    "Birthday", "Anniversary", "Wedding", "New Baby", "Graduation", "Housewarming", "Thank You", "Get Well",
    "Valentine's", "Mother's Day", "Father's Day", "Holiday", "Self-Care", "Coffee Lover", "Book Lover",
    "Garden Lover", "Little Explorer", "Sweet Tooth", "Office Desk", "Date Night",
)


@dataclass(frozen=True)
class ProductPlan:
    name: str
    sku: str
    category: str
    subcategory: str
    brand: str
    price: Decimal
    quantity: int
    materials: tuple[tuple[str, int], ...]
    customizations: tuple[str, ...]
    offer: str | None
    age_days: int


@dataclass(frozen=True)
class PackagePlan:
    name: str
    items: tuple[tuple[str, int], ...]  # product name, quantity
    price: Decimal
    quantity: int
    offer: str | None


@dataclass(frozen=True)
class ShopPlan:
    products: tuple[ProductPlan, ...]
    packages: tuple[PackagePlan, ...]


@dataclass(frozen=True)
class SeedReport:
    totals: dict[str, int]  # rows of each kind in the demo shop
    created: Counter[str]  # how many of them this run added


def plan_shop(rng: random.Random) -> ShopPlan:
    """The demo catalogue as plain data; the same generator state always gives the same plan."""
    kinds = [(category, sub, kind) for category, subs in CATALOGUE.items() for sub, kinds in subs.items()
             for kind in kinds]
    picks = rng.sample([(adjective, kind) for adjective in ADJECTIVES for kind in kinds], PRODUCT_COUNT)
    offer_titles = [title for title, *_ in OFFERS]
    customization_names = [name for name, *_ in CUSTOMIZATIONS]
    products = []
    for number, (adjective, (category, sub, kind)) in enumerate(picks, start=1):
        count = rng.choice((1, 1, 2, 2, 3))
        materials = tuple(zip(rng.sample(MATERIALS, count), rng.choice(MATERIAL_SPLITS[count]), strict=True))
        roll = rng.random()
        quantity = 0 if roll < 0.1 else rng.randint(1, LOW_STOCK) if roll < 0.25 else rng.randint(LOW_STOCK + 1, 150)
        products.append(ProductPlan(
            name=f"{adjective} {kind}",
            sku=f"FZ-{number:04d}",
            category=category,
            subcategory=sub,
            brand=rng.choice(BRANDS),
            price=Decimal(rng.randint(499, 24999)) / 100,
            quantity=quantity,
            materials=materials,
            customizations=tuple(rng.sample(customization_names, rng.choice((1, 2)))) if rng.random() < 0.4 else (),
            offer=rng.choice(offer_titles) if rng.random() < 0.25 else None,
            age_days=rng.randint(0, 120),
        ))
    packages = []
    for theme in PACKAGE_THEMES[:PACKAGE_COUNT]:
        chosen = rng.sample(products, rng.randint(2, 4))
        items = tuple((product.name, rng.choice((1, 1, 2))) for product in chosen)
        worth = sum(product.price * quantity for product, (_, quantity) in zip(chosen, items, strict=True))
        packages.append(PackagePlan(
            name=f"{theme} Gift Box",
            items=items,
            price=(worth * Decimal("0.85")).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP),
            quantity=0 if rng.random() < 0.1 else rng.randint(1, 30),
            offer=rng.choice(offer_titles) if rng.random() < 0.3 else None,
        ))
    return ShopPlan(tuple(products), tuple(packages))


def seed_units() -> int:
    """How many steps `seed_demo_shop` reports through `progress`."""
    return (len(CATALOGUE) + len(BRANDS) + len(MATERIALS) + len(CUSTOMIZATIONS) + len(OFFERS) + PRODUCT_COUNT
            + PACKAGE_COUNT + len(DEMO_CUSTOMERS))


def seed_demo_shop(seed: int = DEFAULT_SEED, progress: Callable[[int], Any] = lambda steps: None,
                   now: datetime | None = None) -> SeedReport:
    """Create whatever of the demo shop is missing, in one transaction."""
    plan = plan_shop(random.Random(seed))
    now = now or utcnow()
    created: Counter[str] = Counter()
    try:
        subcategories = _seed_taxonomy(created, progress)
        brands = _get_or_create(Brand, BRANDS, lambda name: Brand(name=name), created, "brands", progress)
        materials = _get_or_create(Material, MATERIALS, lambda name: Material(name=name), created, "materials",
                                   progress)
        definitions = {name: (kind, options) for name, kind, options in CUSTOMIZATIONS}
        customizations = _get_or_create(
            Customization, definitions,
            lambda name: Customization(name=name, type=definitions[name][0],
                                       options=[{"name": n, "value": v} for n, v in definitions[name][1]]),
            created, "customizations", progress,
        )
        windows = {title: (Decimal(discount), now + timedelta(days=start), now + timedelta(days=end))
                   for title, discount, start, end in OFFERS}
        offers = _get_or_create(
            Offer, windows,
            lambda title: Offer(title=title, discount_percent=windows[title][0], valid_from=windows[title][1],
                                valid_to=windows[title][2], is_active=True),
            created, "offers", progress, key="title",
        )
        product_plans = {p.name: p for p in plan.products}
        products = _get_or_create(
            Product, product_plans,
            lambda name: _product(product_plans[name], subcategories, brands, materials, customizations, offers, now),
            created, "products", progress,
        )
        package_plans = {p.name: p for p in plan.packages}
        _get_or_create(
            Package, package_plans, lambda name: _package(package_plans[name], products, offers),
            created, "packages", progress,
        )
        _get_or_create(
            User, DEMO_CUSTOMERS,
            lambda email: User(email=email, username=email.split("@")[0], role="customer",
                               password_hash=_demo_customer_hash()),
            created, "customers", progress, key="email",
        )
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    totals = {
        "categories": len(CATALOGUE),
        "subcategories": len(subcategories),
        "brands": len(BRANDS),
        "materials": len(MATERIALS),
        "customizations": len(CUSTOMIZATIONS),
        "offers": len(OFFERS),
        "products": len(plan.products),
        "packages": len(plan.packages),
        "customers": len(DEMO_CUSTOMERS),
    }
    return SeedReport(totals, created)


def create_admin(email: str, password: str) -> User:
    """A new administrator; an email already in use is a Conflict (the caller decides whether that matters)."""
    email = normalise_email(email)
    check_email(email)
    check_password(password)
    if find_user(email) is not None:
        raise Conflict(f"An account with the email {email} already exists")
    user = User(email=email, username=email.split("@")[0][:50], role="admin", password_hash=hash_password(password))
    db.session.add(user)
    commit(f"An account with the email {email} already exists")
    return user


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def check_email(email: str) -> None:
    validate.Email(error="Not a valid email address.")(email)
    if len(email) > 254:
        raise ValidationError("At most 254 characters.")


def check_password(password: str) -> None:
    low, high = PASSWORD_LENGTH
    if not low <= len(password) <= high:
        raise ValidationError(f"Passwords are {low} to {high} characters long.")


@lru_cache(maxsize=1)
def _demo_customer_hash() -> str:
    # scrypt is deliberately slow: the demo customers share one hash, computed only when one is missing.
    return hash_password(DEMO_CUSTOMER_PASSWORD)


def _seed_taxonomy(created: Counter[str], progress: Callable[[int], Any]) -> dict[tuple[str, str], SubCategory]:
    categories = _get_or_create(Category, CATALOGUE, lambda name: Category(name=name, slug=slugify(name)),
                                created, "categories", progress, advance=False)
    subcategories = {}
    for name, category in categories.items():
        existing = {sub.name: sub for sub in category.subcategories}
        for sub_name in CATALOGUE[name]:
            if sub_name not in existing:
                existing[sub_name] = SubCategory(name=sub_name, slug=slugify(sub_name))
                category.subcategories.append(existing[sub_name])
                created["subcategories"] += 1
            subcategories[(name, sub_name)] = existing[sub_name]
        progress(1)
    return subcategories


def _get_or_create(model: type[T], names: Iterable[str], build: Callable[[str], T], created: Counter[str],
                   kind: str, progress: Callable[[int], Any], key: str = "name", advance: bool = True) -> dict[str, T]:
    """Rows of `model` by their unique `key`, the missing ones built and added to the session."""
    names = list(names)
    column = getattr(model, key)
    found: dict[str, T] = {}
    for row in db.session.scalars(select(model).where(column.in_(names)).order_by(model.id)):
        found.setdefault(getattr(row, key), row)
    for name in names:
        if name not in found:
            found[name] = build(name)
            db.session.add(found[name])
            created[kind] += 1
        if advance:
            progress(1)
    return found


def _product(plan: ProductPlan, subcategories: dict[tuple[str, str], SubCategory], brands: dict[str, Brand],
             materials: dict[str, Material], customizations: dict[str, Customization], offers: dict[str, Offer],
             now: datetime) -> Product:
    created_at = now - timedelta(days=plan.age_days)
    product = Product(
        name=plan.name,
        slug=slugify(plan.name),
        sku=plan.sku,
        description=f"A {plan.name.lower()} by {plan.brand}, ready to be given.",
        price=plan.price,
        quantity=plan.quantity,
        brand=brands[plan.brand],
        sub_category=subcategories[(plan.category, plan.subcategory)],
        offer=offers[plan.offer] if plan.offer else None,
        customizations=[customizations[name] for name in plan.customizations],
        created_at=created_at,
        updated_at=created_at,
    )
    product.materials = [ProductMaterial(material=materials[name], percentage=share) for name, share in plan.materials]
    return product


def _package(plan: PackagePlan, products: dict[str, Product], offers: dict[str, Offer]) -> Package:
    return Package(
        name=plan.name,
        slug=slugify(plan.name),
        description=f"{plan.name}: {len(plan.items)} gifts chosen to go together.",
        price=plan.price,
        quantity=plan.quantity,
        offer=offers[plan.offer] if plan.offer else None,
        items=[PackageItem(product=products[name], quantity=quantity) for name, quantity in plan.items],
    )
