"""Payloads and topics of the vision service (``svc/vision/*``, ``events/vision/*``).

Images travel inside the JSON envelope as base64 (``image``), since an envelope is JSON; the
service refuses them above its byte limit before decoding. The error codes the vision service
adds are :class:`VisionError`.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer

from schemas.auth import Token
from schemas.envelope import ErrorBody, ErrorCode
from schemas.names import USERNAME_MAX
from schemas.topics import Operation, Topic

IMAGE_MAX_BYTES = 20_000_000


class VisionError(StrEnum):
    """Error codes specific to the vision service (``too_large`` is the common one)."""

    EMPTY = "empty"  # the image: no bytes
    TOO_MANY_PIXELS = "too_many_pixels"  # the image: over the pixel limit
    NOT_AN_IMAGE = "not_an_image"  # the image: not a JPEG or PNG
    TRUNCATED = "truncated"  # the image: cut short
    FACE_COUNT = "face_count"  # enrolment found no face or more than one (says how many)
    NO_FACE = "no_face"  # recognition found no face
    FACE_TOO_SMALL = "face_too_small"  # enrolment quality checks
    FACE_BLURRED = "face_blurred"
    FACE_TOO_DARK = "face_too_dark"
    WRONG_USER = "wrong_user"  # enrolment: the token belongs to another user than ``name``
    SUBJECT_NOT_FOUND = "subject_not_found"  # schemas/faces.py: no subject with that id
    SUBJECT_EXISTS = "subject_exists"  # schemas/faces.py: creating a subject that exists
    NO_CROP = "no_crop"  # schemas/faces.py: the subject has no kept face crop (a thumbnail)


IMAGE_ERRORS = frozenset({
    VisionError.EMPTY, ErrorCode.TOO_LARGE, VisionError.TOO_MANY_PIXELS,
    VisionError.NOT_AN_IMAGE, VisionError.TRUNCATED,
})
"""Codes that mean the uploaded file itself is unusable (the bridge's ``save_image`` fails)."""


def _b64decode(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    if not isinstance(value, str):
        raise ValueError("must be a base64 string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"is not valid base64: {exc}") from exc


ImageBytes = Annotated[
    bytes,
    BeforeValidator(_b64decode),
    PlainSerializer(lambda data: base64.b64encode(data).decode(), return_type=str),
]
"""Raw JPEG/PNG bytes inside the model, base64 on the wire."""

SubjectName = Annotated[str, Field(min_length=1, max_length=USERNAME_MAX)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class EnrolRequest(_Request):
    """Add one photo of ``name`` (a display name or a username); several photos per person
    are all kept and all used.

    With ``token`` (a login token of the user ``name`` names, checked with the auth service)
    the photo is *bound* to that account: a face matching it unlocks the user's private content
    at a mirror. Without one it only greets by name. A token of another user is ``wrong_user``,
    a token that does not verify ``token_invalid``; unknown fields (an ``owner``, a ``bound``)
    are ignored, so a binding cannot be claimed any other way."""

    name: SubjectName
    image: ImageBytes
    token: Token | None = None


class EnrolReply(BaseModel):
    name: str
    photos: int  # how many photos of this person are enrolled now
    engine: str
    model_version: str
    bound: bool = False  # enrolled with the user's token


class RecogniseRequest(_Request):
    image: ImageBytes


class FaceResult(BaseModel):
    """One face: ``name`` is None for somebody not enrolled; ``box`` is [left, top, right,
    bottom] in pixels; ``distance`` to the nearest enrolled face (lower is surer); ``bound``
    when that nearest photo was enrolled with the user's token. On a mirror's frames, ``live``
    says whether the face's track has shown it is a live head (null when liveness is off, or
    for a single photo), ``live_reason`` why, and ``challenge`` is the prompt the mirror is to
    show while a head-turn challenge is open (docs/vision.md, Liveness)."""

    name: str | None
    box: tuple[int, int, int, int]
    distance: float | None
    bound: bool = False
    live: bool | None = None
    live_reason: str | None = None
    challenge: str | None = None


class RecogniseReply(BaseModel):
    """Every face, largest first, and the largest face's distance in cm (default camera)."""

    faces: list[FaceResult]
    distance: float | None = None


class DistanceRequest(_Request):
    """``model_code`` picks the camera profile of that mirror model (its focal length)."""

    image: ImageBytes
    model_code: str | None = None


class DistanceReply(BaseModel):
    distance: float  # centimetres from the camera to the largest face


class ColourRequest(_Request):
    image: ImageBytes


class ColourReply(BaseModel):
    """``tone`` is the season: spring, summer, autumn or winter (docs/vision.md)."""

    tone: str
    undertone: str  # warm or cool
    depth: str  # light or deep
    warmth_score: float
    depth_score: float


class Enrolled(BaseModel):
    """A new embedding, so every worker adds it to its in-memory gallery. Workers share one
    database and read the row ``embedding_id`` from it (vector, subject, binding): what the
    event itself says about them is not taken on trust."""

    name: str
    engine: str
    model_version: str
    embedding_id: int
    worker: str


class FaceEvent(BaseModel):
    """What the vision service saw in a mirror's frame, for that mirror.

    ``dropped`` counts the frames of this mirror that were replaced by a newer one before they
    could be analysed since the previous event (the newest frame always wins). ``error`` is set,
    and ``faces`` empty, when the frame could not be read.
    """

    mirror_id: str
    faces: list[FaceResult]
    dropped: int = 0
    error: ErrorBody | None = None
    worker: str = ""  # MQTT client id of the vision worker that analysed the frame
    distance: float | None = None  # cm to the largest face, with the default camera profile


class Recognized(BaseModel):
    """Domain event: enrolled people were seen at a mirror, largest face first.

    ``trusted`` are the names among ``names`` whose face may unlock the person's private
    content (messages): the nearest enrolled photo was enrolled with their token, and the face
    has shown it is live unless liveness is off (services/vision/trust.py). ``live`` and
    ``live_reasons`` give each name's liveness, in the order of ``names``."""

    mirror_id: str
    names: list[str]
    unknown: int  # faces seen that belong to nobody enrolled
    at: datetime
    trusted: list[str] = Field(default_factory=list)
    live: list[bool | None] = Field(default_factory=list)
    live_reasons: list[str | None] = Field(default_factory=list)


VISION_ENROL = Operation(
    "svc/vision/enrol", EnrolRequest, "Enrol one photo of a person.", reply=EnrolReply
)
VISION_RECOGNISE = Operation(
    "svc/vision/recognise", RecogniseRequest, "Name every face in a photo.",
    reply=RecogniseReply,
)
VISION_DISTANCE = Operation(
    "svc/vision/distance", DistanceRequest, "How far the largest face is from the camera.",
    reply=DistanceReply,
)
VISION_COLOUR = Operation(
    "svc/vision/personal_color", ColourRequest, "The personal colour season of the largest face.",
    reply=ColourReply,
)
VISION_ENROLLED = Topic(
    "events/vision/enrolled", Enrolled, "A face was enrolled; workers update their galleries."
)

MIRROR_FRAME: Topic[BaseModel] = Topic(
    "mirrors/{mirror_id}/frame", None,
    "A camera frame from a mirror: the raw JPEG or PNG bytes (mosquitto_pub -q 1 -f photo.jpg).",
)
MIRROR_FACE_EVENT = Topic(
    "mirrors/{mirror_id}/events/face", FaceEvent,
    "The faces in a mirror's latest frame: names, boxes, and how many frames were dropped.",
)
VISION_RECOGNIZED = Topic(
    "events/vision/recognized", Recognized, "Enrolled people were seen at a mirror."
)
