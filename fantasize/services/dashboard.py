"""The admin dashboard: user, order, revenue, stock and best-seller figures, each aggregated in SQL."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, Date, case, cast, func, literal_column, select

from fantasize.extensions import db
from fantasize.models import Order, OrderLine, Package, Product, User
from fantasize.models.base import ZERO, utcnow
from fantasize.models.orders import ORDER_STATUSES

# Orders in these states were never paid for or were given back: they earn nothing.
NO_REVENUE_STATUSES = ("cancelled", "rejected", "returned")
CHART_DAYS = 30
TOP_SELLERS = 5
CENT = Decimal("0.01")


def _money(value: Any) -> Decimal:
    # SQLite sums money as floats; rounding to the cent gives both backends the same figure.
    return Decimal(str(value or 0)).quantize(CENT)


def _utc_day(column: Any) -> ColumnElement:
    """The UTC calendar day of a timestamp column, whatever the session's time zone."""
    if db.session.get_bind().dialect.name == "postgresql":
        # A literal, not a bound parameter, so GROUP BY repeats exactly the selected expression.
        return cast(func.timezone(literal_column("'UTC'"), column), Date)
    return func.date(column)  # SQLite stores the UTC time as text: its date part is the UTC day


def _earns() -> ColumnElement[bool]:
    return Order.status.not_in(NO_REVENUE_STATUSES)


def _user_figures(since: datetime) -> dict[str, int]:
    total, customers, admins, new = db.session.execute(
        select(
            func.count(User.id),
            func.count(case((User.role == "customer", 1))),
            func.count(case((User.role == "admin", 1))),
            func.count(case((User.created_at >= since, 1))),
        )
    ).one()
    return {"total": total, "customers": customers, "admins": admins, "new_last30_days": new}


def _revenue_chart(first_day: date) -> list[dict[str, Any]]:
    """One entry per day of the chart, days without orders included; `orders` counts every order placed."""
    day = _utc_day(Order.created_at).label("day")
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    rows = db.session.execute(
        select(day, func.count(Order.id), func.sum(case((_earns(), Order.total))))
        .where(Order.created_at >= start, Order.created_at < start + timedelta(days=CHART_DAYS))
        .group_by(day)
    ).all()
    # PostgreSQL answers dates, SQLite ISO strings: the ISO text is the common key.
    figures = {str(bucket)[:10]: (orders, _money(revenue)) for bucket, orders, revenue in rows}
    chart = []
    for offset in range(CHART_DAYS):
        key = (first_day + timedelta(days=offset)).isoformat()
        orders, revenue = figures.get(key, (0, ZERO))
        chart.append({"date": key, "orders": orders, "revenue": revenue})
    return chart


def _top_sellers() -> list[dict[str, Any]]:
    quantity_sold = func.sum(OrderLine.quantity).label("quantity_sold")
    revenue = func.sum(OrderLine.line_total).label("revenue")
    rows = db.session.execute(
        select(Product.id.label("product_id"), Product.name, quantity_sold, revenue)
        .join(OrderLine, OrderLine.product_id == Product.id)
        .join(Order, Order.id == OrderLine.order_id)
        .where(_earns())
        .group_by(Product.id, Product.name)
        .order_by(quantity_sold.desc(), revenue.desc(), Product.id)
        .limit(TOP_SELLERS)
    ).mappings().all()
    return [{**row, "revenue": _money(row["revenue"])} for row in rows]


def dashboard() -> dict[str, Any]:
    """Every figure of the admin dashboard. "Last 30 days" means today (UTC) and the 29 days before it."""
    first_day = utcnow().date() - timedelta(days=CHART_DAYS - 1)
    since = datetime.combine(first_day, time.min, tzinfo=UTC)
    threshold = current_app.config["LOW_STOCK_THRESHOLD"]

    by_status = dict.fromkeys(ORDER_STATUSES, 0)
    by_status.update(db.session.execute(select(Order.status, func.count(Order.id)).group_by(Order.status)).all())
    order_total, revenue_total = db.session.execute(
        select(func.count(Order.id), func.sum(case((_earns(), Order.total))))
    ).one()
    low_products, low_packages = db.session.execute(
        select(
            select(func.count(Product.id)).where(Product.quantity <= threshold).scalar_subquery(),
            select(func.count(Package.id)).where(Package.quantity <= threshold).scalar_subquery(),
        )
    ).one()
    return {
        "users": _user_figures(since),
        "orders": {"total": order_total, "by_status": by_status},
        "revenue": {"total": _money(revenue_total), "last30_days": _revenue_chart(first_day)},
        "low_stock": {"products": low_products, "packages": low_packages},
        "top_sellers": _top_sellers(),
    }
