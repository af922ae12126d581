"""Events every service publishes about itself."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from schemas.envelope import ErrorBody
from schemas.topics import Topic


class Rejected(BaseModel):
    """A message a service could not answer because it named nobody to answer to."""

    topic: str
    error: ErrorBody


class ServiceStatus(BaseModel):
    """Published on connect (``online``), and on a clean close or as the Last Will (``offline``)."""

    client_id: str
    state: Literal["online", "offline"]


REJECTED = Topic(
    "events/{service}/rejected", Rejected,
    "A request without a usable reply_to was refused: not JSON, not an envelope, too large.",
)
SERVICE_STATUS = Topic(
    "events/{service}/status", ServiceStatus,
    "A service instance came online, or went offline (clean close or Last Will).",
)
