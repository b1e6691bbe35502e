"""Schemas for the real-time admin routes: an announcement (as sent and as broadcast) and the connection figures."""

from __future__ import annotations

from marshmallow import fields, validate

from fantasize.schemas.base import CamelSchema, PlainText

ANNOUNCEMENT_TYPES = ("info", "warning", "maintenance")
TITLE = validate.Length(min=1, max=200)
MESSAGE = validate.Length(min=1, max=2000)


class AnnouncementInSchema(CamelSchema):
    """What `POST /admin/announcements` and `flask announce` take: free text, cleaned of HTML."""

    title = PlainText(required=True, validate=TITLE)
    message = PlainText(required=True, validate=MESSAGE)
    type = fields.String(load_default="info", validate=validate.OneOf(ANNOUNCEMENT_TYPES),
                         metadata={"description": "Defaults to info"})


class AnnouncementSchema(CamelSchema):
    """The `system_announcement` payload every client received."""

    title = fields.String()
    message = fields.String()
    type = fields.String(metadata={"enum": list(ANNOUNCEMENT_TYPES)})
    timestamp = fields.String(metadata={"format": "date-time", "description": "When it was sent"})


class FiguresSchema(CamelSchema):
    """Dumps the figures of fantasize.realtime.stats, dicts whose keys are camelCase already."""

    def on_bind_field(self, field_name: str, field_obj: fields.Field) -> None:
        super().on_bind_field(field_name, field_obj)
        field_obj.attribute = field_obj.data_key


class RoomFiguresSchema(FiguresSchema):
    rooms = fields.Integer(metadata={"description": "Rooms of this kind with at least one socket"})
    members = fields.Integer(metadata={"description": "Sockets in those rooms, a socket counted once per room"})


class RoomKindsSchema(FiguresSchema):
    user = fields.Nested(RoomFiguresSchema, metadata={"description": "user:<id>, joined on authentication"})
    order = fields.Nested(RoomFiguresSchema, metadata={"description": "order:<id>, joined by track_order"})
    inventory = fields.Nested(RoomFiguresSchema, metadata={"description": "inventory:<id>, joined by track_inventory"})


class InstanceFiguresSchema(FiguresSchema):
    instance = fields.String(metadata={"description": "host:pid:random, unique per server process"})
    pid = fields.Integer()
    async_mode = fields.String(metadata={"enum": ["gevent", "threading"]})
    connected_clients = fields.Integer(metadata={"description": "Sockets connected, signed in or not"})
    authenticated_clients = fields.Integer(metadata={"description": "Sockets signed in"})
    authenticated_users = fields.Integer(metadata={"description": "Distinct users those sockets speak for"})
    rooms = fields.Nested(RoomKindsSchema)
    updated_at = fields.String(metadata={"format": "date-time", "description": "When these figures were taken"})


class RoomMembersSchema(FiguresSchema):
    members = fields.Integer(metadata={"description": "Sockets in rooms of this kind, over every instance"})


class RoomTotalsSchema(FiguresSchema):
    user = fields.Nested(RoomMembersSchema)
    order = fields.Nested(RoomMembersSchema)
    inventory = fields.Nested(RoomMembersSchema)


class TotalFiguresSchema(FiguresSchema):
    instances = fields.Integer(metadata={"description": "Live instances counted"})
    connected_clients = fields.Integer()
    authenticated_clients = fields.Integer()
    authenticated_users = fields.Integer(metadata={"description": "Distinct users over every instance"})
    rooms = fields.Nested(RoomTotalsSchema)


class RealtimeStatsSchema(FiguresSchema):
    message_queue = fields.String(allow_none=True, metadata={
        "enum": ["redis", None],
        "description": "redis: instances share events and figures through Redis; null: this process only"})
    complete = fields.Boolean(metadata={"description": "False when Redis could not be read: only this instance "
                                                       "is counted"})
    instance = fields.Nested(InstanceFiguresSchema, metadata={"description": "The instance that answered"})
    instances = fields.List(fields.Nested(InstanceFiguresSchema), metadata={"description": "Every live instance, "
                                                                                           "this one included"})
    total = fields.Nested(TotalFiguresSchema)
