"""Every topic mirrorhub declares, in one list: what docs/asyncapi.yaml is checked against."""

from __future__ import annotations

from typing import Any

from schemas import auth, messaging, service, vision
from schemas.topics import Topic

TOPICS: tuple[Topic[Any], ...] = (
    *auth.OPERATIONS,
    *vision.OPERATIONS,
    vision.VISION_ENROLLED,
    vision.MIRROR_FRAME,
    vision.MIRROR_FACE_EVENT,
    vision.VISION_RECOGNIZED,
    *messaging.OPERATIONS,
    messaging.MIRROR_DISPLAY,
    messaging.MIRROR_WIDGETS,
    messaging.MIRROR_STATUS,
    service.REJECTED,
    service.SERVICE_STATUS,
)
