"""Reviews of products and packages, and the user's favourites."""

from __future__ import annotations

from flask import Blueprint, Response

from fantasize.api.endpoint import endpoint
from fantasize.api.render import render
from fantasize.platform.cache.domains import PACKAGE_REVIEWS_PAGE, PRODUCT_REVIEWS_PAGE
from fantasize.schemas.base import PageQuery
from fantasize.schemas.engagement import FavoriteSchema, FavoriteV2Schema, ReviewInSchema, ReviewSchema
from fantasize.services import favorites, reviews
from fantasize.web import Outcome, Shape, current_user

bp = Blueprint("reviews", __name__)

REVIEW = Shape("Review", ReviewSchema)
FAVORITE = Shape("Favorite", FavoriteSchema, FavoriteV2Schema)

CREATE_ERRORS = (401, 404, 409)
ALREADY_FAVORITE = Outcome(200, "It already was a favourite")


@bp.get("/products/<int:product_id>/reviews")
@endpoint("An active product's reviews, newest first", returns=REVIEW, many=True, query=PageQuery,
          cache=PRODUCT_REVIEWS_PAGE, tags=("reviews",), errors=(404,))
def list_product_reviews(product_id, args):
    return reviews.list_reviews("product", product_id, **args)


@bp.get("/packages/<int:package_id>/reviews")
@endpoint("An active package's reviews, newest first", returns=REVIEW, many=True, query=PageQuery,
          cache=PACKAGE_REVIEWS_PAGE, tags=("reviews",), errors=(404,))
def list_package_reviews(package_id, args):
    return reviews.list_reviews("package", package_id, **args)


@bp.post("/products/<int:product_id>/reviews")
@endpoint("Review a product (one review per user and product: a second is 409)", returns=REVIEW, status=201,
          body=ReviewInSchema, auth="user", tags=("reviews",), errors=CREATE_ERRORS)
def create_product_review(product_id, body):
    return reviews.create_review(current_user(), "product", product_id, **body)


@bp.post("/packages/<int:package_id>/reviews")
@endpoint("Review a package (one review per user and package: a second is 409)", returns=REVIEW, status=201,
          body=ReviewInSchema, auth="user", tags=("reviews",), errors=CREATE_ERRORS)
def create_package_review(package_id, body):
    return reviews.create_review(current_user(), "package", package_id, **body)


@bp.delete("/reviews/<int:review_id>")
@endpoint("Delete a review as its author or an admin (anyone else gets 404, as for an unknown id)", status=204,
          auth="user", tags=("reviews",), errors=(401, 404))
def delete_review(review_id):
    reviews.delete_review(current_user(), review_id)


@bp.get("/users/me/favorites")
@endpoint("The signed-in user's favourites, newest first (items withdrawn from sale are left out)",
          returns=FAVORITE, many=True, query=PageQuery, auth="user", tags=("favorites",), errors=(401,))
def list_favorites(args):
    return favorites.list_favorites(current_user(), **args)


def _added(kind: str, item_id: int) -> Response:
    favorite, created = favorites.add_favorite(current_user(), kind, item_id)
    # Idempotent PUT: 201 when the favourite is new, 200 when it already was one.
    return render(favorite, FAVORITE, status=201 if created else 200)


@bp.put("/users/me/favorites/products/<int:product_id>")
@endpoint("Add an active product to the favourites: 201 when added, 200 when it already was one",
          returns=FAVORITE, status=201, auth="user", tags=("favorites",), errors=(401, 404), also=(ALREADY_FAVORITE,))
def add_favorite_product(product_id):
    return _added("product", product_id)


@bp.put("/users/me/favorites/packages/<int:package_id>")
@endpoint("Add an active package to the favourites: 201 when added, 200 when it already was one",
          returns=FAVORITE, status=201, auth="user", tags=("favorites",), errors=(401, 404), also=(ALREADY_FAVORITE,))
def add_favorite_package(package_id):
    return _added("package", package_id)


@bp.delete("/users/me/favorites/products/<int:product_id>")
@endpoint("Remove a product from the favourites (also 204 when it was not one)", status=204, auth="user",
          tags=("favorites",), errors=(401,))
def remove_favorite_product(product_id):
    favorites.remove_favorite(current_user(), "product", product_id)


@bp.delete("/users/me/favorites/packages/<int:package_id>")
@endpoint("Remove a package from the favourites (also 204 when it was not one)", status=204, auth="user",
          tags=("favorites",), errors=(401,))
def remove_favorite_package(package_id):
    favorites.remove_favorite(current_user(), "package", package_id)
