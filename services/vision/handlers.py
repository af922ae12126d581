"""The vision service's table: one row per ``svc/vision/*`` operation."""

from __future__ import annotations

from broker.service import Handler
from schemas.vision import VISION_ENROL, VISION_RECOGNISE
from services.vision.faces import Faces


def handlers(faces: Faces) -> list[Handler]:
    return [
        Handler(VISION_ENROL, faces.enrol),
        Handler(VISION_RECOGNISE, faces.recognise),
    ]
