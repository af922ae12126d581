"""Managing enrolled subjects (seed 002's ``/api/face...``): list, read, delete, register,
find, per-subject thresholds and "not me" negatives.

Every change is made in the database the workers share, applied to this worker's gallery, and
announced on ``events/vision/subject_changed`` (new photos on ``events/vision/enrolled``, as
enrolments are): each other worker then reads the subject again from the database
(:meth:`Faces.refresh`), so a deleted subject is recognised by no worker within moments.

A subject's threshold lies within :data:`THRESHOLD_BOUNDS` times the service's: loosening it
beyond would let one subject take most faces, tightening it beyond would recognise nobody.
A "not me" keeps the largest face of the frame as a negative of the subject, at most
:data:`NEGATIVES_MAX` of them (the oldest go first), so that a mirror cannot grow one without
bound; a mirror reports only for itself (broker/access.py lets it publish its own
``mirrors/{id}/not_me`` only).
"""

from __future__ import annotations

import logging
from collections import Counter

import numpy as np
from pydantic import ValidationError
from tortoise.exceptions import IntegrityError

from broker.client import Bus, Message
from schemas.envelope import ErrorCode
from schemas.errors import BusUnavailable, ServiceError
from schemas.faces import (
    VISION_SUBJECT_CHANGED,
    ChangeSubjectRequest,
    FaceRegisterRequest,
    FindReply,
    FindRequest,
    Found,
    NotMeReport,
    NotMeRequest,
    SubjectChanged,
    SubjectDeleted,
    SubjectInfo,
    SubjectRequest,
    SubjectsReply,
    SubjectsRequest,
    Thumbnail,
)
from schemas.vision import VisionError
from services.vision.analysis import largest
from services.vision.crops import newest_crop
from services.vision.faces import Faces
from services.vision.models import FaceEmbedding, NegativeEmbedding, Subject
from services.vision.recognitions import Recognitions

log = logging.getLogger(__name__)

THRESHOLD_BOUNDS = (0.5, 1.5)  # times the service's threshold
NEGATIVES_MAX = 50


def _not_found(subject_id: str) -> ServiceError:
    return ServiceError(VisionError.SUBJECT_NOT_FOUND, f"face {subject_id} not found", "id")


class Subjects:
    """The handlers of the ``svc/vision/...`` operations of schemas/faces.py."""

    def __init__(self, faces: Faces, bus: Bus, recognitions: Recognitions) -> None:
        self.faces = faces
        self.bus = bus
        self.recognitions = recognitions

    async def _get(self, subject_id: str) -> Subject:
        subject = await Subject.get_or_none(name=subject_id)
        if subject is None:
            raise _not_found(subject_id)
        return subject

    async def _infos(self, subjects: list[Subject]) -> list[SubjectInfo]:
        ids = [subject.id for subject in subjects]
        engine = self.faces.engine
        of_engine = {"subject_id__in": ids, "engine": engine.name,
                     "model_version": engine.model_version}
        counts = Counter(str(owner) for owner in await FaceEmbedding.filter(
            **of_engine).values_list("subject_id", flat=True))
        negatives = Counter(str(owner) for owner in await NegativeEmbedding.filter(
            **of_engine).values_list("subject_id", flat=True))
        cropped = {str(owner) for owner in await FaceEmbedding.filter(
            subject_id__in=ids, crop__isnull=False).values_list("subject_id", flat=True)}
        return [SubjectInfo(id=s.name, name=s.display_name or s.name, descriptors=counts[str(s.id)],
                            threshold=s.threshold, negatives=negatives[str(s.id)],
                            thumbnail=str(s.id) in cropped)
                for s in subjects]

    async def _info(self, subject: Subject) -> SubjectInfo:
        return (await self._infos([subject]))[0]

    async def _changed(self, subject_id: str) -> None:
        await self.faces.refresh(subject_id)
        try:
            await self.bus.publish(VISION_SUBJECT_CHANGED,
                                   SubjectChanged(id=subject_id, worker=self.bus.client_id))
        except BusUnavailable:
            log.warning("vision: the other workers were not told that %s changed (broker "
                        "unreachable); they hold it as it was until they restart", subject_id)

    async def subjects(self, req: SubjectsRequest) -> SubjectsReply:
        page = await Subject.all().order_by("name").offset(req.offset).limit(req.limit)
        return SubjectsReply(subjects=await self._infos(page), total=await Subject.all().count(),
                             offset=req.offset, limit=req.limit)

    async def subject(self, req: SubjectRequest) -> SubjectInfo:
        return await self._info(await self._get(req.id))

    async def thumbnail(self, req: SubjectRequest) -> Thumbnail:
        """The face crop of the subject's newest photo that kept one (services/vision/crops.py)."""
        subject = await self._get(req.id)
        crop = await newest_crop(subject.id)
        if crop is None:
            raise ServiceError(VisionError.NO_CROP, f"face {req.id} has no kept face crop", "id")
        return Thumbnail(id=req.id, jpeg=crop)

    async def delete_subject(self, req: SubjectRequest) -> SubjectDeleted:
        """Every photo (bound or not, of every engine), negative and kept recognition of the
        subject go, then the subject: a name is personal data too."""
        subject = await self._get(req.id)
        removed = await FaceEmbedding.filter(subject_id=subject.id).delete()
        await NegativeEmbedding.filter(subject_id=subject.id).delete()
        await self.recognitions.forget(req.id)
        await Subject.filter(id=subject.id).delete()
        await self._changed(req.id)
        return SubjectDeleted(id=req.id, descriptors=removed)

    async def change_subject(self, req: ChangeSubjectRequest) -> SubjectInfo:
        if req.threshold is not None:
            base = self.faces.gallery.threshold
            low, high = (round(base * bound, 4) for bound in THRESHOLD_BOUNDS)
            if not low <= req.threshold <= high:
                raise ServiceError(ErrorCode.INVALID,
                                   f"threshold must lie between {low:g} and {high:g}",
                                   "threshold")
        subject = await self._get(req.id)
        await Subject.filter(id=subject.id).update(threshold=req.threshold)
        await self._changed(req.id)
        return await self._info(await self._get(req.id))

    async def register(self, req: FaceRegisterRequest) -> SubjectInfo:
        """A photo of ``req.id``, unbound (it greets only): seed 002's admins enrol no account.
        The subject is made only once the photo has passed, so a bad photo leaves nothing."""
        if req.new and await Subject.exists(name=req.id):
            raise ServiceError(VisionError.SUBJECT_EXISTS, f"face {req.id} already exists", "id")
        if not req.new:
            await self._get(req.id)
        vector, crop = await self.faces.one_face(req.image, "file")
        if req.new:
            try:
                subject = await Subject.create(name=req.id, display_name=req.name)
            except IntegrityError as exc:  # registered meanwhile
                raise ServiceError(VisionError.SUBJECT_EXISTS,
                                   f"face {req.id} already exists", "id") from exc
        else:
            subject = await self._get(req.id)
            if req.name is not None:
                await Subject.filter(id=subject.id).update(display_name=req.name)
        await self.faces.store(subject, vector, req.image, crop)
        return await self._info(await self._get(req.id))

    async def find(self, req: FindRequest) -> FindReply:
        face = largest(await self.faces.analysis.faces(req.image), "file")
        matches = self.faces.gallery.nearest(face.embedding, req.limit)
        names = dict(await Subject.filter(name__in=[m.name for m in matches]).values_list(
            "name", "display_name"))
        return FindReply(found=[
            Found(id=m.name, name=names.get(m.name) or m.name, distance=round(m.distance, 4))
            for m in matches if m.name is not None])

    async def not_me(self, req: NotMeRequest) -> SubjectInfo:
        await self._negative(req.id, req.image, "admin")
        return await self._info(await self._get(req.id))

    async def _negative(self, subject_id: str, image: bytes, reported_by: str) -> None:
        """Keep the largest face of ``image`` as a negative of the subject."""
        subject = await self._get(subject_id)
        face = largest(await self.faces.analysis.faces(image), "file")
        engine = self.faces.engine
        vector = np.asarray(face.embedding, dtype=np.float32)
        await NegativeEmbedding.create(subject=subject, engine=engine.name,
                                       model_version=engine.model_version,
                                       vector=vector.tobytes(), reported_by=reported_by[:80])
        old = await NegativeEmbedding.filter(subject_id=subject.id).order_by("-id").offset(
            NEGATIVES_MAX).values_list("id", flat=True)
        if old:
            await NegativeEmbedding.filter(id__in=list(old)).delete()
        await self._changed(subject_id)

    async def on_not_me(self, message: Message) -> None:
        """A mirror's user said a recognition was wrong. Nobody waits for an answer: a report
        that cannot be used is logged and dropped."""
        mirror_id = message.params["mirror_id"]
        try:
            report = NotMeReport.model_validate_json(message.payload)
            await self._negative(report.name, report.image, f"mirror:{mirror_id}")
        except (ValidationError, ServiceError) as exc:
            log.warning("vision: not-me report of mirror %s dropped: %s", mirror_id, exc)

    async def on_subject_changed(self, message: Message) -> None:
        """Another worker changed a subject: read it again from the database."""
        event = SubjectChanged.model_validate_json(message.payload)
        if event.worker != self.bus.client_id:
            await self.faces.refresh(event.id)
