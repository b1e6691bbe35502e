"""Every model, importable from one place (Alembic autogenerate sees them all through this module)."""

from fantasize.models.catalog import (
    Brand,
    Category,
    Customization,
    Material,
    Package,
    PackageImage,
    PackageItem,
    Product,
    ProductImage,
    ProductMaterial,
    SubCategory,
)
from fantasize.models.engagement import Favorite, Notification, Review
from fantasize.models.offers import Offer
from fantasize.models.orders import Cart, CartItem, Order, OrderLine, OrderStatusChange
from fantasize.models.site import ContactMessage, SiteContent
from fantasize.models.uploads import Upload
from fantasize.models.users import Address, PaymentMethod, User

__all__ = [
    "Address", "Brand", "Cart", "CartItem", "Category", "ContactMessage", "Customization", "Favorite",
    "Material", "Notification", "Offer", "Order", "OrderLine", "OrderStatusChange", "Package", "PackageImage",
    "PackageItem", "PaymentMethod", "Product", "ProductImage", "ProductMaterial", "Review", "SiteContent",
    "SubCategory", "Upload", "User",
]
