"""Payloads and topics of the recognitions the vision service keeps, for the admin page.

A *recognition* is an enrolled face seen at a mirror: when, where, whom, how near its enrolled
photos (the match distance, lower is surer) and what its liveness showed. Vision keeps one row
when a person first appears at a mirror, again when their liveness verdict changes, and at most
once a minute while they stay (services/vision/recognitions.py), not one per frame; rows older
than ``MIRRORHUB_RETENTION_DAYS`` are purged. Only internal accounts may ask
(``svc/vision/...``, broker/access.py) or listen (``events/vision/...``); the bridge shows them
to logged-in admins only (``/admin/recognitions``).
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from schemas.topics import Operation, Topic

RECENT_MAX = 500


class Recognition(BaseModel):
    """One kept recognition. ``live`` is null when liveness is off; ``trusted``: the face may
    unlock the person's private content (bound to their account, and live)."""

    id: int
    at: datetime
    mirror_id: str
    name: str
    distance: float | None
    live: bool | None = None
    live_reason: str | None = None
    trusted: bool = False


class RecognitionsRequest(BaseModel):
    """The newest recognitions first, ``limit`` of them, older than id ``before`` if given."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    limit: int = Field(default=50, ge=1, le=RECENT_MAX)
    before: int | None = Field(default=None, ge=1, le=2**31 - 1)


class RecognitionsReply(BaseModel):
    recognitions: list[Recognition]


VISION_RECOGNITIONS = Operation(
    "svc/vision/recognitions", RecognitionsRequest,
    "The newest kept recognitions (time, mirror, name, distance, liveness), for admins.",
    reply=RecognitionsReply,
)
VISION_RECOGNITION = Topic(
    "events/vision/recognition", Recognition,
    "A recognition was kept (a person appeared at a mirror, or their liveness changed).",
)
