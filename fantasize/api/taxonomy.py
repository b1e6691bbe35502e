"""Catalogue taxonomy: categories with their subcategories, brands and materials."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.platform.cache.domains import CATEGORY_PAGE, TAXONOMY_PAGE
from fantasize.schemas.base import PageQuery
from fantasize.schemas.taxonomy import (
    BrandInSchema,
    BrandSchema,
    CategoryInSchema,
    CategorySchema,
    CategoryV2Schema,
    MaterialInSchema,
    MaterialSchema,
    SubCategoryInSchema,
    SubCategorySchema,
)
from fantasize.services import taxonomy
from fantasize.web import Shape, current_user

bp = Blueprint("taxonomy", __name__)

CATEGORY = Shape("Category", CategorySchema, CategoryV2Schema)
SUBCATEGORY = Shape("SubCategory", SubCategorySchema)
BRAND = Shape("Brand", BrandSchema)
MATERIAL = Shape("Material", MaterialSchema)

TAGS = ("catalogue",)
WRITE_ERRORS = (400, 401, 403, 409, 415, 422)


@bp.get("/categories")
@endpoint("List categories with their subcategories (admins also see inactive ones)", returns=CATEGORY,
          many=True, query=PageQuery, auth="optional", cache=CATEGORY_PAGE, tags=TAGS, errors=(400, 401))
def list_categories(args):
    return taxonomy.list_categories(current_user(), args["page"], args["limit"])


@bp.post("/categories")
@endpoint("Create a category", returns=CATEGORY, status=201, body=CategoryInSchema, auth="admin", tags=TAGS,
          errors=WRITE_ERRORS)
def create_category(body):
    return taxonomy.create_category(body)


@bp.get("/categories/<int:category_id>")
@endpoint("Get a category with its subcategories", returns=CATEGORY, auth="optional", cache=CATEGORY_PAGE, tags=TAGS,
          errors=(401, 404))
def get_category(category_id: int):
    return taxonomy.get_category(category_id, current_user())


@bp.patch("/categories/<int:category_id>")
@endpoint("Change a category", returns=CATEGORY, body=CategoryInSchema, partial=True, auth="admin", tags=TAGS,
          errors=(*WRITE_ERRORS, 404))
def update_category(category_id: int, body):
    return taxonomy.update_category(category_id, body)


@bp.delete("/categories/<int:category_id>")
@endpoint("Delete a category and its subcategories (409 while products use them)", status=204, auth="admin",
          tags=TAGS, errors=(401, 403, 404, 409))
def delete_category(category_id: int):
    taxonomy.delete_category(category_id)


@bp.post("/categories/<int:category_id>/subcategories")
@endpoint("Add a subcategory to a category", returns=SUBCATEGORY, status=201, body=SubCategoryInSchema,
          auth="admin", tags=TAGS, errors=(*WRITE_ERRORS, 404))
def create_subcategory(category_id: int, body):
    return taxonomy.create_subcategory(category_id, body)


@bp.patch("/subcategories/<int:subcategory_id>")
@endpoint("Rename a subcategory", returns=SUBCATEGORY, body=SubCategoryInSchema, partial=True, auth="admin",
          tags=TAGS, errors=(*WRITE_ERRORS, 404))
def update_subcategory(subcategory_id: int, body):
    return taxonomy.update_subcategory(subcategory_id, body)


@bp.delete("/subcategories/<int:subcategory_id>")
@endpoint("Delete a subcategory (409 while products use it)", status=204, auth="admin", tags=TAGS,
          errors=(401, 403, 404, 409))
def delete_subcategory(subcategory_id: int):
    taxonomy.delete_subcategory(subcategory_id)


@bp.get("/brands")
@endpoint("List brands", returns=BRAND, many=True, query=PageQuery, cache=TAXONOMY_PAGE, tags=TAGS, errors=(400,))
def list_brands(args):
    return taxonomy.list_brands(args["page"], args["limit"])


@bp.post("/brands")
@endpoint("Create a brand", returns=BRAND, status=201, body=BrandInSchema, auth="admin", tags=TAGS,
          errors=WRITE_ERRORS)
def create_brand(body):
    return taxonomy.create_brand(body)


@bp.patch("/brands/<int:brand_id>")
@endpoint("Change a brand", returns=BRAND, body=BrandInSchema, partial=True, auth="admin", tags=TAGS,
          errors=(*WRITE_ERRORS, 404))
def update_brand(brand_id: int, body):
    return taxonomy.update_brand(brand_id, body)


@bp.delete("/brands/<int:brand_id>")
@endpoint("Delete a brand (409 while products use it)", status=204, auth="admin", tags=TAGS,
          errors=(401, 403, 404, 409))
def delete_brand(brand_id: int):
    taxonomy.delete_brand(brand_id)


@bp.get("/materials")
@endpoint("List materials", returns=MATERIAL, many=True, query=PageQuery, cache=TAXONOMY_PAGE, tags=TAGS, errors=(400,))
def list_materials(args):
    return taxonomy.list_materials(args["page"], args["limit"])


@bp.post("/materials")
@endpoint("Create a material", returns=MATERIAL, status=201, body=MaterialInSchema, auth="admin", tags=TAGS,
          errors=WRITE_ERRORS)
def create_material(body):
    return taxonomy.create_material(body)


@bp.patch("/materials/<int:material_id>")
@endpoint("Change a material", returns=MATERIAL, body=MaterialInSchema, partial=True, auth="admin", tags=TAGS,
          errors=(*WRITE_ERRORS, 404))
def update_material(material_id: int, body):
    return taxonomy.update_material(material_id, body)


@bp.delete("/materials/<int:material_id>")
@endpoint("Delete a material (409 while products use it)", status=204, auth="admin", tags=TAGS,
          errors=(401, 403, 404, 409))
def delete_material(material_id: int):
    taxonomy.delete_material(material_id)
