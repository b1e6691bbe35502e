"""Real time, for administrators: announcements to every connected client, and who is connected."""

from __future__ import annotations

from flask import Blueprint, current_app

from fantasize.api.endpoint import endpoint
from fantasize.realtime import outbox, realtime_of, stats
from fantasize.schemas.realtime import AnnouncementInSchema, AnnouncementSchema, RealtimeStatsSchema
from fantasize.web import Shape

bp = Blueprint("realtime", __name__)

ANNOUNCEMENT = Shape("Announcement", AnnouncementSchema)
STATS = Shape("RealtimeStats", RealtimeStatsSchema)

TAGS = ("admin", "realtime")


@bp.post("/admin/announcements")
@endpoint("Send system_announcement to every Socket.IO client of every instance; 202: it is on its way, emitted "
          "after the response (answers with the payload sent)",
          returns=ANNOUNCEMENT, status=202, body=AnnouncementInSchema, auth="admin", tags=TAGS)
def post_announcement(body):
    return outbox.announce(realtime_of(current_app), body["title"], body["message"], body["type"])


@bp.get("/admin/realtime/stats")
@endpoint("Socket.IO figures: connected and signed-in clients and rooms, for this instance, every live instance "
          "and in total", returns=STATS, auth="admin", tags=TAGS)
def get_realtime_stats():
    return stats.collect(realtime_of(current_app))
