"""Declarations of the face admin API (seed 002, :mod:`bridge.face_admin_api`) for
``/openapi.json``: every failure is ``{"detail": ...}`` with a 4xx (5xx when the bridge fails or
a service is away or silent)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bridge.spec import (
    MULTIPART,
    REPLY,
    Auth,
    Endpoint,
    Family,
    Fields,
    Link,
    Name,
    Reply,
    merged,
)
from schemas.auth import Password
from schemas.faces import FIND_MAX, PAGE_MAX
from schemas.names import USERNAME_MAX

TAG = "face-admin"


class Detail(BaseModel):
    model_config = REPLY
    detail: str


class Face(BaseModel):
    model_config = REPLY
    id: str
    name: str
    descriptors: int
    threshold: float | None
    negatives: int


class FaceDetail(Detail):
    data: Face


class OneFace(BaseModel):
    model_config = REPLY
    data: Face


class FacePage(BaseModel):
    model_config = REPLY
    data: list[Face]
    total: int
    offset: int
    limit: int


class Match(BaseModel):
    model_config = REPLY
    id: str
    name: str
    distance: float


class Found(Detail):
    response_time: str
    data: list[Match]


class Token(BaseModel):
    model_config = REPLY
    token: str


class AdminFields(Fields):
    username: Name
    password: Password


class FacePageQuery(BaseModel):
    offset: int = Field(default=0, ge=0, le=2**31 - 1)
    limit: int = Field(default=100, ge=1, le=PAGE_MAX)


_SUBJECT = Field(min_length=1, max_length=USERNAME_MAX)


class FaceRegisterFields(Fields):
    id: str = _SUBJECT
    name: str | None = Field(default=None, max_length=USERNAME_MAX)
    file: bytes


class FindFields(Fields):
    file: bytes
    limit: int | None = Field(default=None, ge=1, le=FIND_MAX)


class PhotoFields(Fields):
    file: bytes


class ThresholdFields(Fields):
    threshold: float | None = Field(description="The face's own match threshold; null for "
                                                "the service's.")


def _detail(description: str, *models: type[BaseModel]) -> Reply:
    return Reply(description, models or (Detail,))


_CALLS = {500: _detail("The bridge or a service failed."),
          503: _detail("The broker is unavailable."),
          504: _detail("The service did not answer in time.")}
_BAD = {400: _detail("A field (or the id) is missing or malformed, or the photo is unusable "
                     "(no face, several, too small, blurred, too dark, not an image).")}
_READS = {413: _detail("The body exceeds the endpoint's limit."),
          415: _detail("A content type other than JSON or a form.")}
_ADMIN = {401: _detail("No admin token: none, or one that is not an admin's.")}
_UNKNOWN = {404: _detail("face <id> not found")}
_USE_TOKEN = {"header.Authorization": "Bearer {$response.body#/token}"}
_AFTER_LOGIN = (Link("ListFaces", "GET", "/api/face", _USE_TOKEN),)


def _admin(method: str, path: str, summary: str, replies: dict[int, Reply], *,
           reads: bool = True, body: type[BaseModel] | None = None,
           content: tuple[str, ...] = (MULTIPART,),
           query: type[BaseModel] | None = None) -> Endpoint:
    """An endpoint that wants an admin's token."""
    return Endpoint(method, path, TAG, summary,
                    merged(_CALLS, _BAD, _READS if reads else {}, _ADMIN, replies),
                    body=body, content=content, query=query, auth=Auth.ADMIN)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/jwt/register", TAG, "Make an admin (open while there is none)",
             merged(_CALLS, _BAD, _READS, {
                 201: _detail("admin <name> registered"),
                 401: _detail("An admin exists already: only an admin may add one."),
                 409: _detail("admin already exists")}),
             body=AdminFields, auth=Auth.ADMIN, auth_optional=True),
    Endpoint("POST", "/jwt/login", TAG, "Log in as an admin",
             merged(_CALLS, _BAD, _READS, {
                 200: Reply("An admin's token.", (Token,), links=_AFTER_LOGIN),
                 401: _detail("wrong username or password"),
                 429: Reply("Too many failures: wait `Retry-After` seconds.", (Detail,),
                            headers=("Retry-After",))}),
             body=AdminFields),
    _admin("GET", "/api/face", "A page of the enrolled faces",
           {200: Reply("The page, in id order.", (FacePage,))}, query=FacePageQuery),
    _admin("POST", "/api/face/register", "Create a face from a photo of exactly one face",
           {201: _detail("face <id> registered", FaceDetail),
            409: _detail("face <id> already exists")}, body=FaceRegisterFields),
    _admin("PUT", "/api/face/register", "Add a photo to a face",
           {200: _detail("photo added to face <id>", FaceDetail), **_UNKNOWN},
           body=FaceRegisterFields),
    _admin("POST", "/api/face/find", "The faces a photo's largest face may be, nearest first",
           {200: Reply("The faces within their threshold.", (Found,))}, body=FindFields),
    _admin("GET", "/api/face/{id}", "One face",
           {200: Reply("The face.", (OneFace,)), **_UNKNOWN}, reads=False),
    _admin("DELETE", "/api/face/{id}", "Delete a face and every photo of it",
           {200: _detail("face <id> deleted"), **_UNKNOWN}, reads=False),
    _admin("PATCH", "/api/face/{id}", "Set a face's own match threshold",
           {200: _detail("face <id> changed", FaceDetail), **_UNKNOWN},
           body=ThresholdFields, content=("application/json",)),
    _admin("POST", "/api/face/{id}/not_me", "Keep a photo's largest face as not face id",
           {200: _detail("kept as not face <id>", FaceDetail), **_UNKNOWN}, body=PhotoFields),
)

FAMILY = Family(TAG, "Seed 002: admin accounts and enrolled faces.", ENDPOINTS, (Detail,))
