"""Discovery: search, the home page and the explore page."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.api.render import render
from fantasize.platform.cache.domains import EXPLORE_PAGE, HOME_PAGE, SEARCH_PAGE
from fantasize.schemas import product_rows
from fantasize.schemas.discovery import (
    ExploreSchema,
    HomeSchema,
    HomeV2Schema,
    SearchQuery,
    SearchResultsSchema,
    SearchResultsV2Schema,
)
from fantasize.services import discovery
from fantasize.web import Shape

bp = Blueprint("discovery", __name__)

SEARCH_RESULTS = Shape("SearchResults", SearchResultsSchema, SearchResultsV2Schema)
HOME = Shape("Home", HomeSchema, HomeV2Schema)
EXPLORE = Shape("Explore", ExploreSchema)

TAGS = ("discovery",)


@bp.get("/search")
@endpoint("Search active products and packages (name, description) and categories (name); each list capped by limit",
          returns=SEARCH_RESULTS, query=SearchQuery, cache=SEARCH_PAGE, tags=TAGS, errors=(400,))
def search(args):
    return render(discovery.search(args["q"], args["limit"]), SEARCH_RESULTS, dump=product_rows.dump_search)


@bp.get("/home")
@endpoint("The home page: new arrivals, top rated products, offers running now and the active categories",
          returns=HOME, cache=HOME_PAGE, tags=TAGS)
def home():
    return render(discovery.home(), HOME, dump=product_rows.dump_home)


@bp.get("/explore")
@endpoint("Browsing facets: categories, brands and materials with active product counts, and the price range",
          returns=EXPLORE, cache=EXPLORE_PAGE, tags=TAGS)
def explore():
    return discovery.explore()
