"""Payloads and topics of managing enrolled faces (seed 002's ``/api/face...``), served by vision.

A *subject* is one enrolled person: its ``id`` is the name it was enrolled under (by
``/register/face`` at a mirror, or ``POST /api/face/register``), its ``name`` the display name
given at ``/api/face/register`` (the id when none was given). Only internal accounts (the
bridge, the services, the operator) may publish on ``svc/vision/...``: the broker keeps mirrors
off them (broker/access.py). Mirrors report a wrong recognition on their own
``mirrors/{mirror_id}/not_me``.

Error codes besides the common and image ones (:class:`schemas.vision.VisionError`):
``subject_not_found``, ``subject_exists``, ``face_count`` (registration: not exactly one face),
``no_face`` (find, not me: no face at all), ``invalid`` (a threshold out of its bounds),
``no_crop`` (a thumbnail of a subject without a kept face crop: crops are kept only with
``MIRRORHUB_KEEP_FACE_CROPS=1``, services/vision/crops.py).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.topics import Operation, Topic
from schemas.vision import ImageBytes, SubjectName

PAGE_MAX = 500
FIND_MAX = 100


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class SubjectInfo(BaseModel):
    """One subject as seed 002 shows it, with what the seed leaves out: ``descriptors`` counts
    its embeddings of the running engine and model; ``threshold`` is its own (None: the
    service's), ``negatives`` how many "not me" faces it holds."""

    id: str
    name: str
    descriptors: int
    threshold: float | None = None
    negatives: int = 0
    thumbnail: bool = False  # a face crop is kept: the admin page shows it (svc/vision/thumbnail)


class SubjectsRequest(_Request):
    """A page of subjects in ``id`` order."""

    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    limit: int = Field(default=100, ge=1, le=PAGE_MAX)


class SubjectsReply(BaseModel):
    subjects: list[SubjectInfo]
    total: int  # subjects in all
    offset: int  # the page asked for
    limit: int


class SubjectRequest(_Request):
    id: SubjectName


class Thumbnail(BaseModel):
    """The kept face crop of a subject's newest photo that has one: a small JPEG."""

    id: str
    jpeg: ImageBytes


class SubjectDeleted(BaseModel):
    id: str
    descriptors: int  # embeddings removed (of every engine)


class ChangeSubjectRequest(_Request):
    """Set the subject's own match threshold (None: back to the service's), within the bounds
    the service answers ``invalid`` outside of (docs/http-api.md)."""

    id: SubjectName
    threshold: float | None = Field(strict=True, allow_inf_nan=False)  # JSON: no "0.5"


class FaceRegisterRequest(_Request):
    """``new``: create the subject (``subject_exists`` when it exists) from a photo with exactly
    one face; else add the photo to an existing one (``subject_not_found``). ``name`` is the
    display name (kept when None)."""

    id: SubjectName
    name: SubjectName | None = None
    image: ImageBytes
    new: bool


class FindRequest(_Request):
    image: ImageBytes
    limit: int = Field(default=5, ge=1, le=FIND_MAX)


class Found(BaseModel):
    id: str
    name: str
    distance: float


class FindReply(BaseModel):
    """The subjects within their threshold of the largest face, nearest first."""

    found: list[Found]


class NotMeRequest(_Request):
    """The face in ``image`` (the largest) is not subject ``id``: keep it as a negative."""

    id: SubjectName
    image: ImageBytes


class NotMeReport(BaseModel):
    """What a mirror publishes when its user says a recognition was wrong: the subject it was
    recognised as, and the frame."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: SubjectName
    image: ImageBytes


class SubjectChanged(BaseModel):
    """A subject's photos, threshold or negatives changed (or it is gone): every worker reads
    it again from the database they share. Nothing else in the event is taken on trust."""

    id: str
    worker: str


VISION_SUBJECTS = Operation(
    "svc/vision/subjects", SubjectsRequest, "A page of enrolled subjects.", reply=SubjectsReply,
)
VISION_SUBJECT = Operation(
    "svc/vision/subject", SubjectRequest, "One enrolled subject.", reply=SubjectInfo,
)
VISION_THUMBNAIL = Operation(
    "svc/vision/thumbnail", SubjectRequest, "A subject's kept face crop, for the admin page.",
    reply=Thumbnail,
)
VISION_DELETE_SUBJECT = Operation(
    "svc/vision/delete_subject", SubjectRequest,
    "Delete a subject and its photos from every worker.", reply=SubjectDeleted,
)
VISION_CHANGE_SUBJECT = Operation(
    "svc/vision/change_subject", ChangeSubjectRequest,
    "Set a subject's own match threshold.", reply=SubjectInfo,
)
VISION_REGISTER = Operation(
    "svc/vision/register", FaceRegisterRequest,
    "Create a subject from one photo, or add a photo to one.", reply=SubjectInfo,
)
VISION_FIND = Operation(
    "svc/vision/find", FindRequest, "The enrolled subjects nearest the largest face.",
    reply=FindReply,
)
VISION_NOT_ME = Operation(
    "svc/vision/not_me", NotMeRequest, "Keep a face as a negative of a subject.",
    reply=SubjectInfo,
)
MIRROR_NOT_ME = Topic(
    "mirrors/{mirror_id}/not_me", NotMeReport,
    "A mirror's user says the face in this frame is not the subject it was recognised as.",
)
VISION_SUBJECT_CHANGED = Topic(
    "events/vision/subject_changed", SubjectChanged,
    "A subject changed or is gone; workers reload it from the database.",
)
