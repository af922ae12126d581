"""Distance and personal colour of the largest face in a photo (``svc/vision/distance``,
``svc/vision/personal_color``)."""

from __future__ import annotations

from schemas.errors import ServiceError
from schemas.vision import (
    ColourReply,
    ColourRequest,
    DistanceReply,
    DistanceRequest,
    VisionError,
)
from services.vision.analysis import Analysis, largest
from services.vision.colour import analyse_tone
from services.vision.distance import CameraProfiles, estimate_distance_cm
from services.vision.engine import FaceEngine
from services.vision.images import ImageLimits


class Measures:
    def __init__(self, engine: FaceEngine, cameras: CameraProfiles, limits: ImageLimits,
                 analysis: Analysis | None = None) -> None:
        self.engine = engine
        self.cameras = cameras
        self.limits = limits
        self.analysis = analysis or Analysis(engine, limits)

    async def distance(self, req: DistanceRequest) -> DistanceReply:
        face = largest(await self.analysis.faces(req.image), "image")
        focal = self.cameras.for_model(req.model_code).focal_px
        return DistanceReply(distance=round(estimate_distance_cm(face, focal), 1))

    async def personal_color(self, req: ColourRequest) -> ColourReply:
        image, faces = await self.analysis(req.image)
        face = largest(faces, "image")
        try:
            result = analyse_tone(image, face)
        except ValueError as exc:
            raise ServiceError(VisionError.NO_FACE, f"no skin to measure: {exc}", "image") from exc
        return ColourReply(tone=result.tone, undertone=result.undertone, depth=result.depth,
                           warmth_score=round(result.warmth_score, 2),
                           depth_score=round(result.depth_score, 2))
