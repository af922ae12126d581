"""Everything mirrorhub holds about one user, for ``mirrorhub export USER`` (the user's right
of access): each service answers for its own data over ``svc/{service}/export``, and the
command puts the answers together (mirrorhub/export.py).

- auth: the account (no password hash, no tokens);
- messaging: the messages the user sent and received, their widget layouts, their files'
  metadata (no contents);
- vision: the faces enrolled under their name or bound to their account: how many photos, and
  when each was enrolled, never an embedding (nor the photo's hash, which stands for the photo).

Only internal accounts may ask (``svc/...``). An unknown user is auth's ``user_not_found``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from schemas.names import Username
from schemas.topics import Operation
from schemas.vision import ImageBytes


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AccountExportRequest(_Request):
    username: Username


class AccountExport(BaseModel):
    id: int
    username: str
    email: str | None
    first_name: str | None
    last_name: str | None
    fullname: str | None
    profile: str | None  # a profile picture's file key
    created_at: datetime


class UserExportRequest(_Request):
    """One account's data in a service: ``username`` as auth stores it, ``user_id`` auth's id."""

    username: Username
    user_id: int


class ExportedMessage(BaseModel):
    id: int
    direction: str  # "sent" or "received" (both when sent to oneself: listed once, "sent")
    sender: str
    receiver: str
    content: str
    created_at: datetime
    read_at: datetime | None
    attachment_type: str | None
    attachment_name: str | None


class ExportedLayout(BaseModel):
    model_code: str
    positions: dict[str, list[int]]
    updated_at: datetime


class ExportedFile(BaseModel):
    file_type: str
    file_name: str
    size: int
    content_type: str
    created_at: datetime
    updated_at: datetime


class MessagingExport(BaseModel):
    messages: list[ExportedMessage]
    layouts: list[ExportedLayout]
    files: list[ExportedFile]


class ExportedPhoto(BaseModel):
    enrolled_at: datetime
    engine: str
    model_version: str
    bound: bool  # enrolled with the user's token (it unlocks their messages at a mirror)
    # The small JPEG of the face kept with the photo (MIRRORHUB_KEEP_FACE_CROPS=1), base64.
    face_crop: ImageBytes | None = None


class ExportedFace(BaseModel):
    id: str  # the subject's id (the name it was enrolled under)
    display_name: str | None
    created_at: datetime
    threshold: float | None
    photos: int
    negatives: int  # faces reported as "not me" for it
    photo_dates: list[ExportedPhoto]


class FacesExport(BaseModel):
    faces: list[ExportedFace]


AUTH_EXPORT = Operation(
    "svc/auth/export", AccountExportRequest, "One user's account, for an export.",
    reply=AccountExport,
)
MESSAGING_EXPORT = Operation(
    "svc/messaging/export", UserExportRequest,
    "One user's messages, layouts and files' metadata, for an export.", reply=MessagingExport,
)
VISION_EXPORT = Operation(
    "svc/vision/export", UserExportRequest,
    "One user's faces: photo counts and dates, no embeddings; for an export.",
    reply=FacesExport,
)
