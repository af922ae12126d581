"""Every topic mirrorhub declares, in one list: what docs/asyncapi.yaml is checked against."""

from __future__ import annotations

from schemas import auth, service
from schemas.topics import Topic

TOPICS: tuple[Topic, ...] = (
    *auth.OPERATIONS,
    service.REJECTED,
    service.SERVICE_STATUS,
)
