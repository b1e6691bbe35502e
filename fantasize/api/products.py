"""Products and packages: listing with filters and sorts, details, writes and stock."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.api.render import render_for
from fantasize.platform.cache.domains import PACKAGE_PAGE, PRODUCT_PAGE
from fantasize.schemas import product_rows
from fantasize.schemas.products import (
    PackageInSchema,
    PackageQuery,
    PackageSchema,
    PackageV2Schema,
    ProductInSchema,
    ProductQuery,
    ProductSchema,
    ProductV2Schema,
    StaffPackageSchema,
    StaffPackageV2Schema,
    StaffProductSchema,
    StaffProductV2Schema,
    StockInSchema,
)
from fantasize.services import product_reads, products
from fantasize.web import Shape, current_user

bp = Blueprint("products", __name__)

PRODUCT = Shape("Product", ProductSchema, ProductV2Schema)
PACKAGE = Shape("Package", PackageSchema, PackageV2Schema)
# Administrators' reads and writes: every linked offer and package item, whatever its state.
STAFF_PRODUCT = Shape("Product", StaffProductSchema, StaffProductV2Schema)
STAFF_PACKAGE = Shape("Package", StaffPackageSchema, StaffPackageV2Schema)
# Reads come as Core records (no ORM objects) and render through product_rows, which gives what the shapes'
# schemas give; writes answer with ORM objects through the schemas themselves.

WRITE_ERRORS = (400, 401, 403, 404, 409, 415, 422)


@bp.get("/products")
@endpoint("List active products with filters and a sort (admins may add includeInactive=true)", returns=PRODUCT,
          many=True, query=ProductQuery, auth="optional", cache=PRODUCT_PAGE, tags=("products",),
          errors=(400, 401, 403))
def list_products(args):
    viewer = current_user()
    return render_for(viewer, product_reads.list_products(args, viewer), PRODUCT, STAFF_PRODUCT, many=True,
                      dump=product_rows.dump)


@bp.get("/products/<int:product_id>")
@endpoint("One product (inactive ones for admins only)", returns=PRODUCT, auth="optional", cache=PRODUCT_PAGE,
          tags=("products",), errors=(401, 404))
def get_product(product_id):
    viewer = current_user()
    return render_for(viewer, product_reads.get_product(product_id, viewer), PRODUCT, STAFF_PRODUCT,
                      dump=product_rows.dump)


@bp.post("/products")
@endpoint("Create a product", returns=STAFF_PRODUCT, status=201, body=ProductInSchema, auth="admin",
          tags=("products",), errors=(400, 401, 403, 409, 415, 422))
def create_product(body):
    return products.create_product(body)


@bp.patch("/products/<int:product_id>")
@endpoint("Change a product; a given list replaces the old one", returns=STAFF_PRODUCT, body=ProductInSchema,
          partial=True, auth="admin", tags=("products",), errors=WRITE_ERRORS)
def update_product(product_id, body):
    return products.update_product(product_id, body)


@bp.delete("/products/<int:product_id>")
@endpoint("Delete a product (409 while an order or a package refers to it)", status=204, auth="admin",
          tags=("products",), errors=(401, 403, 404, 409))
def delete_product(product_id):
    products.delete_product(product_id)


@bp.patch("/products/<int:product_id>/stock")
@endpoint("Set a product's stock ({quantity}) or move it atomically ({delta}; 409 INSUFFICIENT_STOCK below 0)",
          returns=STAFF_PRODUCT, body=StockInSchema, auth="admin", tags=("products",), errors=WRITE_ERRORS)
def change_product_stock(product_id, body):
    return products.change_product_stock(product_id, **body)


@bp.get("/packages")
@endpoint("List active packages with filters and a sort (admins may add includeInactive=true)", returns=PACKAGE,
          many=True, query=PackageQuery, auth="optional", cache=PACKAGE_PAGE, tags=("packages",),
          errors=(400, 401, 403))
def list_packages(args):
    viewer = current_user()
    return render_for(viewer, product_reads.list_packages(args, viewer), PACKAGE, STAFF_PACKAGE, many=True,
                      dump=product_rows.dump)


@bp.get("/packages/<int:package_id>")
@endpoint("One package (inactive ones for admins only)", returns=PACKAGE, auth="optional", cache=PACKAGE_PAGE,
          tags=("packages",), errors=(401, 404))
def get_package(package_id):
    viewer = current_user()
    return render_for(viewer, product_reads.get_package(package_id, viewer), PACKAGE, STAFF_PACKAGE,
                      dump=product_rows.dump)


@bp.post("/packages")
@endpoint("Create a package of products", returns=STAFF_PACKAGE, status=201, body=PackageInSchema, auth="admin",
          tags=("packages",), errors=(400, 401, 403, 409, 415, 422))
def create_package(body):
    return products.create_package(body)


@bp.patch("/packages/<int:package_id>")
@endpoint("Change a package; a given list replaces the old one", returns=STAFF_PACKAGE, body=PackageInSchema,
          partial=True, auth="admin", tags=("packages",), errors=WRITE_ERRORS)
def update_package(package_id, body):
    return products.update_package(package_id, body)


@bp.delete("/packages/<int:package_id>")
@endpoint("Delete a package (409 while an order refers to it)", status=204, auth="admin", tags=("packages",),
          errors=(401, 403, 404, 409))
def delete_package(package_id):
    products.delete_package(package_id)


@bp.patch("/packages/<int:package_id>/stock")
@endpoint("Set a package's stock ({quantity}) or move it atomically ({delta}; 409 INSUFFICIENT_STOCK below 0)",
          returns=STAFF_PACKAGE, body=StockInSchema, auth="admin", tags=("packages",), errors=WRITE_ERRORS)
def change_package_stock(package_id, body):
    return products.change_package_stock(package_id, **body)
