"""What the vision service does with faces: enrol photos and name the faces in a photo.

Every worker keeps the embeddings in an in-memory :class:`Gallery`, loaded from the database
at start and kept in step with the other workers through ``events/vision/enrolled``.
"""

from __future__ import annotations

import logging

import numpy as np

from broker.client import Bus, Message
from schemas.errors import ServiceError
from schemas.vision import (
    VISION_ENROLLED,
    Enrolled,
    EnrolReply,
    EnrolRequest,
    FaceResult,
    RecogniseReply,
    RecogniseRequest,
    VisionError,
)
from services.vision.analysis import Analysis
from services.vision.distance import DEFAULT_CAMERA, CameraProfile, estimate_distance_cm
from services.vision.engine import DetectedFace, FaceEngine, RGBImage
from services.vision.images import ImageLimits
from services.vision.matcher import Gallery
from services.vision.models import FaceEmbedding, Subject
from services.vision.quality import check_face

log = logging.getLogger(__name__)


class Faces:
    """The handlers of ``svc/vision/enrol`` and ``svc/vision/recognise``."""

    def __init__(
        self,
        engine: FaceEngine,
        gallery: Gallery,
        bus: Bus,
        limits: ImageLimits,
        camera: CameraProfile = DEFAULT_CAMERA,
        analysis: Analysis | None = None,
    ) -> None:
        self.engine = engine
        self.analysis = analysis or Analysis(engine, limits)
        self.camera = camera
        self.gallery = gallery
        self.bus = bus
        self.limits = limits

    async def load(self) -> int:
        """Fill the gallery with the stored embeddings of this engine and model version."""
        rows = await FaceEmbedding.filter(
            engine=self.engine.name, model_version=self.engine.model_version
        ).values_list("subject__name", "vector")
        if rows:
            names = [name for name, _ in rows]
            vectors = np.stack([np.frombuffer(vector, dtype=np.float32) for _, vector in rows])
            self.gallery.add_many(names, vectors)
        return len(rows)

    async def _analyse(self, data: bytes) -> tuple[RGBImage, list[DetectedFace]]:
        return await self.analysis(data)

    async def enrol(self, req: EnrolRequest) -> EnrolReply:
        image, faces = await self._analyse(req.image)
        if len(faces) != 1:
            raise ServiceError(
                VisionError.FACE_COUNT,
                f"found {len(faces)} faces; enrolment needs a photo with exactly one",
                "face_image",
            )
        issues = check_face(image, faces[0].box)
        if issues:
            raise ServiceError(issues[0].code, issues[0].message, "face_image")
        vector = np.asarray(faces[0].embedding, dtype=np.float32)
        subject, _ = await Subject.get_or_create(name=req.name)
        await FaceEmbedding.create(subject=subject, engine=self.engine.name,
                                   model_version=self.engine.model_version,
                                   vector=vector.tobytes())
        self.gallery.add(req.name, vector)
        event = Enrolled(name=req.name, engine=self.engine.name,
                         model_version=self.engine.model_version,
                         embedding=vector.tolist(), worker=self.bus.client_id)
        await self.bus.publish(VISION_ENROLLED, event)
        photos = await FaceEmbedding.filter(subject=subject, engine=self.engine.name).count()
        return EnrolReply(name=req.name, photos=photos, engine=self.engine.name,
                          model_version=self.engine.model_version)

    async def on_enrolled(self, message: Message) -> None:
        """Another worker enrolled a face: add it here too."""
        event = Enrolled.model_validate_json(message.payload)
        if (event.worker == self.bus.client_id or event.engine != self.engine.name
                or event.model_version != self.engine.model_version):
            return
        self.gallery.add(event.name, np.asarray(event.embedding, dtype=np.float32))

    async def recognise(self, req: RecogniseRequest) -> RecogniseReply:
        return self.named(await self.analysis.faces(req.image))

    def named(self, faces: list[DetectedFace]) -> RecogniseReply:
        """The reply for ``faces`` (largest first), each named by the gallery: one photo's, or
        a mirror frame's with embeddings its tracks kept (services/vision/tracking.py)."""
        if not faces:
            raise ServiceError(VisionError.NO_FACE, "No face found in the image", "face_image")
        results = []
        for face in faces:
            match = self.gallery.match(face.embedding)
            box = face.box
            distance = None if not np.isfinite(match.distance) else round(match.distance, 4)
            results.append(FaceResult(name=match.name, box=(box.left, box.top, box.right,
                                                            box.bottom), distance=distance))
        return RecogniseReply(faces=results, distance=self._distance(faces[0]))

    def _distance(self, face: DetectedFace) -> float | None:
        try:
            return round(estimate_distance_cm(face, self.camera.focal_px), 1)
        except ValueError:  # the eyes coincide: no distance to tell
            return None
