"""The vision service's table: one row per ``svc/vision/*`` operation."""

from __future__ import annotations

from broker.service import Handler
from schemas.vision import VISION_COLOUR, VISION_DISTANCE, VISION_ENROL, VISION_RECOGNISE
from services.vision.faces import Faces
from services.vision.measures import Measures


def handlers(faces: Faces, measures: Measures) -> list[Handler]:
    return [
        Handler(VISION_ENROL, faces.enrol),
        Handler(VISION_RECOGNISE, faces.recognise),
        Handler(VISION_DISTANCE, measures.distance),
        Handler(VISION_COLOUR, measures.personal_color),
    ]
