"""Server-to-server integrations authenticated by API key."""

from __future__ import annotations

from flask import Blueprint

from fantasize.api.endpoint import endpoint
from fantasize.platform import api_keys
from fantasize.platform.api_keys import require_api_key
from fantasize.schemas.admin import StockSyncInSchema, StockSyncResultSchema
from fantasize.services import inventory
from fantasize.web import Shape

bp = Blueprint("integrations", __name__)
bp.record_once(lambda state: api_keys.init_app(state.app))

STOCK_SYNC_RESULT = Shape("StockSyncResult", StockSyncResultSchema)


# The key is checked above @endpoint, so a caller without one learns nothing about the body's validity.
@bp.post("/integrations/inventory")
@require_api_key
@endpoint("Set the absolute stock of up to 1000 products by productId or sku, all or nothing. "
          "Authenticated by the X-API-Key header (not a bearer token): 401 without a valid key, "
          "403 from an address outside the key's allow-list; 422 lists unknown products and changes nothing",
          returns=STOCK_SYNC_RESULT, body=StockSyncInSchema, tags=("integrations",), errors=(401, 403))
def sync_inventory(body):
    return inventory.sync_stock(body["items"])
