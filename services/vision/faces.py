"""What the vision service does with faces: enrol photos and name the faces in a photo.

Every worker keeps the embeddings in an in-memory :class:`Gallery`, loaded from the database
at start and kept in step with the other workers through ``events/vision/enrolled``: the event
names the new row, which each worker reads from the database they share, so that nobody who can
publish the event can put a face (or a binding) into the galleries without it being stored.
An event lost while the broker was away (a worker's enrolment then is stored, but nobody hears
of it) is made up for by :meth:`Faces.keep_in_step`: after every connection each worker makes
its whole gallery what the database holds (the first too: an enrolment between :meth:`load` and
the subscription would be missed otherwise, and a first connection lost while it was being set
up never told this callback of it).
A photo enrolled with its user's token is bound to the account (services/vision/trust.py).
Subjects' own thresholds and "not me" negatives (services/vision/subjects.py) are loaded and
refreshed with their photos.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from broker.client import Bus, Message
from schemas.errors import BusUnavailable, ServiceError
from schemas.photos import KnownPhotosReply, KnownPhotosRequest
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
from services.vision.analysis import Analysis, largest
from services.vision.crops import face_thumbnail
from services.vision.distance import DEFAULT_CAMERA, CameraProfile, estimate_distance_cm
from services.vision.engine import DetectedFace, FaceEngine
from services.vision.images import ImageLimits
from services.vision.matcher import Gallery
from services.vision.models import FaceEmbedding, NegativeEmbedding, Subject
from services.vision.quality import check_face
from services.vision.trust import account_of

log = logging.getLogger(__name__)

_RESYNC_RETRY = (0.5, 30.0)  # seconds between attempts at a resync: first, at most (doubling)
_Row = tuple[str, bytes, int | None]  # a stored embedding: subject name, vector, owner's id
# A subject's own threshold and its negatives' vectors, by subject name.
_Tuning = dict[str, tuple[float | None, list[bytes]]]


def _vectors(stored: Sequence[bytes]) -> npt.NDArray[np.float32]:
    return np.stack([np.frombuffer(vector, dtype=np.float32) for vector in stored])


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
        keep_crops: bool = False,
    ) -> None:
        self.engine = engine
        self.keep_crops = keep_crops  # a thumbnail of each enrolled face (vision/crops.py)
        self.analysis = analysis or Analysis(engine, limits)
        self.camera = camera
        self.gallery = gallery
        self.bus = bus
        self.limits = limits
        self._connected = asyncio.Event()
        bus.on_connect(self._on_connect)

    async def _on_connect(self) -> None:
        self._connected.set()

    async def keep_in_step(self) -> None:
        """After each connection to the broker, make the gallery what the database holds: the
        other workers' ``enrolled`` and ``subject_changed`` events of meanwhile are lost.
        A database that is away meanwhile is tried again, 0.5 s doubling to 30 s."""
        while True:
            await self._connected.wait()
            self._connected.clear()
            delay = _RESYNC_RETRY[0]
            while True:
                try:
                    names = {str(name) for name in
                             await Subject.all().values_list("name", flat=True)}
                    await self.refresh(*(names | self.gallery.subjects))
                    break
                except Exception as exc:  # keep serving: the gallery is stale, not wrong
                    log.warning("vision: resync of the gallery failed, again in %g s: %s",
                                delay, exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, _RESYNC_RETRY[1])
            log.info("vision: gallery resynced after a connection (%d embeddings)",
                     len(self.gallery))

    async def _stored(self, **filters: object) -> list[_Row]:
        """The stored embeddings of this engine and model version that match ``filters``."""
        rows: list[_Row] = await FaceEmbedding.filter(
            engine=self.engine.name, model_version=self.engine.model_version, **filters,
        ).values_list("subject__name", "vector", "owner_id")
        return rows

    def _add_rows(self, rows: list[_Row]) -> None:
        if rows:
            self.gallery.add_many([name for name, _, _ in rows],
                                  _vectors([vector for _, vector, _ in rows]),
                                  [owner is not None for _, _, owner in rows])

    async def _tuning(self, names: Sequence[str] | None = None) -> _Tuning:
        """The stored thresholds and negatives (of this engine and model) of ``names`` (None:
        of every subject)."""
        subjects = Subject.filter(threshold__isnull=False)
        negatives = NegativeEmbedding.filter(engine=self.engine.name,
                                             model_version=self.engine.model_version)
        if names is not None:
            subjects = subjects.filter(name__in=names)
            negatives = negatives.filter(subject__name__in=names)
        tuning: _Tuning = {name: (threshold, []) for name, threshold
                           in await subjects.values_list("name", "threshold")}
        for name, vector in await negatives.values_list("subject__name", "vector"):
            tuning.setdefault(name, (None, []))[1].append(vector)
        return tuning

    def _tune(self, tuning: _Tuning) -> None:
        for name, (threshold, negatives) in tuning.items():
            self.gallery.tune(name, threshold, _vectors(negatives) if negatives else None)

    async def load(self) -> int:
        """Fill the gallery with the stored embeddings of this engine and model version, and
        the subjects' thresholds and negatives."""
        rows = await self._stored()
        tuning = await self._tuning()
        self._add_rows(rows)
        self._tune(tuning)
        return len(rows)

    async def refresh(self, *names: str) -> None:
        """Make the gallery's rows, thresholds and negatives of the subjects ``names`` what the
        database holds (after their photos were removed or moved, or they were changed)."""
        rows = await self._stored(subject__name__in=names)
        tuning = await self._tuning(names)
        for name in names:  # no await from here on: matching never sees half a refresh
            self.gallery.remove(name)
        self._add_rows(rows)
        self._tune(tuning)

    async def enrol(self, req: EnrolRequest) -> EnrolReply:
        """Store one photo of ``req.name``; with ``req.token`` bound to the token's account,
        which must be ``name``'s (services/vision/trust.py)."""
        # The token first: refusing a stranger's token needs no face analysis.
        token = req.token
        account = await account_of(self.bus, token, req.name) if token else None
        name = account.username if account else req.name
        vector, crop = await self.one_face(req.image, "face_image")
        subject, _ = await Subject.get_or_create(name=name)
        row = await self._create(subject, vector, account.user_id if account else None,
                                 req.image, crop)
        if token and account:
            await self._still_held(row, token, name)
        await self.add(name, row, vector)
        photos = await FaceEmbedding.filter(subject=subject, engine=self.engine.name).count()
        return EnrolReply(name=name, photos=photos, engine=self.engine.name,
                          model_version=self.engine.model_version, bound=account is not None)

    async def one_face(self, data: bytes,
                       field: str) -> tuple[npt.NDArray[np.float32], bytes | None]:
        """The embedding of the one face of an enrolment photo, and its thumbnail when crops
        are kept: ``face_count`` (saying how many it found) unless there is exactly one, a
        quality code when it is too small, blurred or dark. ``field`` names the upload in the
        errors."""
        image, faces = await self.analysis(data)
        if len(faces) != 1:
            raise ServiceError(
                VisionError.FACE_COUNT,
                f"found {len(faces)} faces; enrolment needs a photo with exactly one", field,
            )
        issues = check_face(image, faces[0].box)
        if issues:
            raise ServiceError(issues[0].code, issues[0].message, field)
        crop = face_thumbnail(image, faces[0].box) if self.keep_crops else None
        return np.asarray(faces[0].embedding, dtype=np.float32), crop

    async def _create(self, subject: Subject, vector: npt.NDArray[np.float32],
                      owner_id: int | None, photo: bytes, crop: bytes | None) -> FaceEmbedding:
        return await FaceEmbedding.create(subject=subject, engine=self.engine.name,
                                          model_version=self.engine.model_version,
                                          vector=vector.tobytes(), owner_id=owner_id,
                                          photo_sha256=hashlib.sha256(photo).hexdigest(),
                                          crop=crop)

    async def add(self, name: str, row: FaceEmbedding, vector: npt.NDArray[np.float32]) -> None:
        """Put a stored photo into this worker's gallery and tell the other workers about it."""
        self.gallery.add(name, vector, bound=row.owner_id is not None)
        try:
            await self.bus.publish(VISION_ENROLLED, Enrolled(
                name=name, engine=self.engine.name, model_version=self.engine.model_version,
                embedding_id=row.id, worker=self.bus.client_id))
        except BusUnavailable as exc:
            # The photo is stored: failing the enrolment now would tell a lie. The other
            # workers pick it up when they resync after this outage (keep_in_step).
            log.warning("vision: enrolment of %s stored, not announced: %s", name, exc)

    async def store(self, subject: Subject, vector: npt.NDArray[np.float32],
                    photo: bytes, crop: bytes | None) -> None:
        """Store an unbound ``photo`` of ``subject`` (its embedding ``vector``, its face's
        ``crop`` if kept), add it here and announce it (seed 002's admin registration;
        :meth:`enrol` is the one that binds)."""
        row = await self._create(subject, vector, None, photo, crop)
        await self.add(subject.name, row, vector)

    async def known_photos(self, req: KnownPhotosRequest) -> KnownPhotosReply:
        """Which of the photo hashes are enrolled with this engine and model (schemas/photos.py)."""
        known = await FaceEmbedding.filter(
            photo_sha256__in=req.sha256, engine=self.engine.name,
            model_version=self.engine.model_version,
        ).distinct().values_list("photo_sha256", flat=True)
        return KnownPhotosReply(known=sorted({str(digest) for digest in known}))

    async def _still_held(self, row: FaceEmbedding, token: str, name: str) -> None:
        """Check the token again now that the bound row is stored: an account deleted while the
        photo was analysed must not leave a face bound to it. Past this check, the deletion
        commits after the row did, and its event finds the row (services/vision/accounts.py)."""
        try:
            await account_of(self.bus, token, name)
        except ServiceError:
            await row.delete()
            raise

    async def on_enrolled(self, message: Message) -> None:
        """Another worker enrolled a face: add the row it stored here too."""
        event = Enrolled.model_validate_json(message.payload)
        if (event.worker == self.bus.client_id or event.engine != self.engine.name
                or event.model_version != self.engine.model_version):
            return
        rows = await self._stored(id=event.embedding_id)
        if not rows:
            log.warning("vision: enrolled embedding %d is not in this worker's database "
                        "(vision workers must share one)", event.embedding_id)
            return
        self._add_rows(rows)

    async def recognise(self, req: RecogniseRequest) -> RecogniseReply:
        return self.named(await self.analysis.faces(req.image))

    def named(self, faces: list[DetectedFace]) -> RecogniseReply:
        """The reply for ``faces`` (largest first), each named by the gallery: one photo's, or
        a mirror frame's with embeddings its tracks kept (services/vision/tracking.py)."""
        first = largest(faces, "face_image")
        results = []
        for face in faces:
            match = self.gallery.match(face.embedding)
            box = face.box
            distance = None if not np.isfinite(match.distance) else round(match.distance, 4)
            results.append(FaceResult(name=match.name, box=(box.left, box.top, box.right,
                                                            box.bottom), distance=distance,
                                      bound=match.bound))
        return RecogniseReply(faces=results, distance=self._distance(first))

    def _distance(self, face: DetectedFace) -> float | None:
        try:
            return round(estimate_distance_cm(face, self.camera.focal_px), 1)
        except ValueError:  # the eyes coincide: no distance to tell
            return None
