"""The audit log, kept by auth: who did what as an admin, and when.

Each entry has the admin who acted (``actor``; None for the command line or the first admin's
own registration, which no admin made), an ``action`` (:class:`AuditAction`), its ``target``
(a face's id, an admin's name, a user's name), a little ``detail`` and the time. Entries are
only added, never changed; there is no operation that deletes them.

``svc/auth/audit_record`` adds one: with an admin's ``token`` the entry is that admin's (auth
checks the token itself, so a caller cannot name another admin); without one it is the
command line's (``source`` ``command``). ``svc/auth/audit`` pages through them, newest first,
for an admin's token only. Both are on ``svc/``, which only internal accounts may use.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.auth import Token
from schemas.topics import Operation

PAGE_MAX = 500
TARGET_MAX = 128
DETAIL_MAX = 2048  # bytes of the detail's JSON


class AuditAction(StrEnum):
    ADMIN_REGISTER = "admin.register"
    ADMIN_LOGIN = "admin.login"
    FACE_REGISTER = "face.register"
    FACE_ADD_PHOTO = "face.add_photo"
    FACE_CHANGE = "face.change"
    FACE_DELETE = "face.delete"
    FACE_NOT_ME = "face.not_me"
    FACE_FIND = "face.find"
    USER_EXPORT = "user.export"


class AuditRecordRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    action: AuditAction
    target: str = Field(default="", max_length=TARGET_MAX)
    detail: dict[str, Any] = Field(default_factory=dict)
    token: Token | None = None  # an admin's: the entry is theirs; none: the command line's


class AuditEntry(BaseModel):
    id: int
    at: datetime
    actor: str | None
    source: str  # "api" (an admin's token) or "command" (the command line)
    action: str
    target: str
    detail: dict[str, Any]


class AuditRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    token: Token  # an admin's
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    limit: int = Field(default=100, ge=1, le=PAGE_MAX)


class AuditReply(BaseModel):
    entries: list[AuditEntry]  # newest first
    total: int
    offset: int
    limit: int


AUTH_AUDIT_RECORD = Operation(
    "svc/auth/audit_record", AuditRecordRequest, "Add an entry to the admins' audit log.",
    reply=AuditEntry,
)
AUTH_AUDIT = Operation(
    "svc/auth/audit", AuditRequest, "A page of the admins' audit log, newest first (admins only).",
    reply=AuditReply,
)
