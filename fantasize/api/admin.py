"""Admin overviews: the dashboard and low stock."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.schemas.admin import DashboardSchema, LowStockItemSchema, LowStockQuery
from fantasize.services import dashboard, inventory
from fantasize.web import Shape

bp = Blueprint("admin", __name__)

DASHBOARD = Shape("Dashboard", DashboardSchema)
LOW_STOCK_ITEM = Shape("LowStockItem", LowStockItemSchema)

TAGS = ("admin",)


@bp.get("/admin/dashboard")
@endpoint("Shop figures: users, orders by status, revenue per day for 30 days, low stock and top sellers",
          returns=DASHBOARD, auth="admin", tags=TAGS)
def get_dashboard():
    return dashboard.dashboard()


@bp.get("/admin/inventory/low-stock")
@endpoint("Products and packages at or below the stock threshold, lowest first", returns=LOW_STOCK_ITEM, many=True,
          query=LowStockQuery, auth="admin", tags=TAGS)
def list_low_stock(args):
    return inventory.low_stock(args["page"], args["limit"], args.get("threshold"))
