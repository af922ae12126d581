"""Declarations of the smart-mirror API's accounts and faces (seeds 000/001,
:mod:`bridge.mirror_api`) for ``/openapi.json``; :func:`seed_000` is the family's failure shape,
shared with :mod:`bridge.messaging_spec`.

Every reply is ``{"result": ..., "type": ...}``; failures add ``message`` and, about one input,
``field`` (bridge/replies.py). Documented domain failures are 200s, as the seed's server answered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from bridge.spec import (
    MULTIPART,
    REPLY,
    Auth,
    Endpoint,
    Family,
    Fields,
    Link,
    Mail,
    Name,
    Reply,
    fail_model,
    merged,
    one_of,
)
from schemas.auth import Password, Token

TAG = "mirror"


class Fail000(BaseModel):
    """A failure of seed 000's family; ``type`` is the route's (``http`` for an unknown path or
    method, and for a failure of the bridge itself)."""

    model_config = REPLY
    result: Literal["fail"]
    type: str
    message: str
    field: str | None = None


def seed_000(type_: str, *also: str, reads: bool = True, calls: bool = True,
             **fields: Any) -> tuple[type[BaseModel], dict[int, Reply]]:
    """The failure model of the route answering ``type_`` (or one of ``also``) with ``fields``
    added, and the failures every such route answers: bad input when it ``reads`` fields, the
    service's failures when it ``calls`` one."""
    name = "".join(word.capitalize() for word in type_.split("_")) + "Fail"
    fail = fail_model(name, Fail000, type=one_of(type_, *also), **fields)
    common: dict[int, Reply] = {500: Reply("The bridge or the service failed.", (Fail000,))}
    if reads:
        common |= {
            400: Reply("A field is missing or malformed (`field` names it), or the body is not "
                       "a JSON object (or nests deeper than 32 levels).", (fail,)),
            413: Reply("The body exceeds the endpoint's limit.", (fail,)),
            415: Reply("A content type other than JSON or a form.", (fail,)),
        }
    if calls:
        common |= {
            503: Reply("The broker, or a service's own dependency, is unavailable.", (fail,)),
            504: Reply("The service did not answer in time.", (fail,)),
        }
    return fail, common


class _Ok(BaseModel):
    model_config = REPLY
    result: Literal["success"]


class LoginFields(Fields):
    username: Name
    password: Password


class LoginOk(_Ok):
    type: Literal["login"]
    token: str


class RegisterFields(Fields):
    username: Name
    password: Password
    email: Mail


class RegisterOk(_Ok):
    type: Literal["register_user"]


class ResetFields(Fields):
    username: Name
    email: Mail


class ResetOk(_Ok):
    type: Literal["reset_password"]
    message: str


class ConfirmFields(Fields):
    token: Token
    password: Password


class ConfirmOk(_Ok):
    type: Literal["reset_password_confirm"]
    message: Literal["Password changed"]


class WhoamiOk(_Ok):
    type: Literal["whoami"]
    username: str


class FaceFields(Fields):
    """The person's name is ``displayname`` (seed 000) or, without it, ``username`` (001)."""

    displayname: Name | None = None
    username: str | None = None  # read only without a displayname, as a Name
    face_image: bytes


class RegisterFaceOk(_Ok):
    type: Literal["register_face"]


class ImageFields(Fields):
    face_image: bytes


class FaceSeen(BaseModel):
    model_config = REPLY
    name: str
    known: bool
    box: tuple[int, int, int, int]
    distance: float | None


class FaceOk(_Ok):
    type: Literal["face"]
    face: str
    faces: list[FaceSeen]
    distance: float | None


class DistanceFields(Fields):
    distance_image: bytes
    model_code: str | None = None


class DistanceOk(_Ok):
    type: Literal["distance"]
    distance: float


class ColourOk(_Ok):
    type: Literal["personal_color"]
    tone: Literal["spring", "summer", "autumn", "winter"]
    undertone: str
    depth: str


def _throttled(fail: type[BaseModel]) -> dict[int, Reply]:
    return {429: Reply("Too many failures: wait `Retry-After` seconds.", (fail,),
                       headers=("Retry-After",))}


def _ok(ok: type[BaseModel], fail: type[BaseModel], links: tuple[Link, ...] = ()) -> Reply:
    return Reply("Success, or a documented failure (`result` says which).", (ok, fail),
                 links=links)


_BAD_TOKEN = "The bearer token does not verify (`message` says why), or is no bearer token."

_login_fail, _login = seed_000("login")
_register_fail, _register = seed_000("register_user")
_reset_fail, _reset = seed_000("reset_password")
_confirm_fail, _confirm = seed_000("reset_password_confirm")
_whoami_fail, _whoami = seed_000("whoami", reads=False)
_enrol_fail, _enrol = seed_000("register_face", "save_image")
_face_fail, _face = seed_000("face", "save_image")
_distance_fail, _distance = seed_000("distance", "save_image", distance=(int | None, None))
_colour_fail, _colour = seed_000("personal_color", "save_image")

_AFTER_REGISTER = (Link("LogIn", "POST", "/login", body={
    "username": "$request.body#/username", "password": "$request.body#/password"}),)
_AFTER_LOGIN = (Link("WhoAmI", "GET", "/whoami",
                     {"header.Authorization": "Bearer {$response.body#/token}"}),)


def _image_route(method: str, path: str, summary: str, body: type[BaseModel],
                 ok: type[BaseModel], fail: type[BaseModel],
                 common: dict[int, Reply]) -> Endpoint:
    return Endpoint(method, path, TAG, summary, merged(common, {200: _ok(ok, fail)}),
                    body=body, content=(MULTIPART,))


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/login", TAG, "Log in: a token for Authorization: Bearer",
             merged(_login, _throttled(_login_fail),
                    {200: _ok(LoginOk, _login_fail, _AFTER_LOGIN)}),
             body=LoginFields),
    Endpoint("POST", "/register/user", TAG, "Register an account",
             merged(_register, {200: _ok(RegisterOk, _register_fail, _AFTER_REGISTER)}),
             body=RegisterFields),
    Endpoint("POST", "/reset_password", TAG, "Mail a password reset code",
             merged(_reset, _throttled(_reset_fail), {200: _ok(ResetOk, _reset_fail)}),
             body=ResetFields),
    Endpoint("POST", "/reset_password/confirm", TAG, "Set a new password with a reset code",
             merged(_confirm, {200: _ok(ConfirmOk, _confirm_fail)}), body=ConfirmFields),
    Endpoint("GET", "/whoami", TAG, "The user a bearer token belongs to",
             merged(_whoami, {200: Reply("The token's user.", (WhoamiOk,)),
                              401: Reply(_BAD_TOKEN, (_whoami_fail,))}),
             auth=Auth.USER),
    Endpoint("POST", "/register/face", TAG, "Enrol a photo of a person",
             merged(_enrol, {200: _ok(RegisterFaceOk, _enrol_fail),
                             401: Reply(_BAD_TOKEN, (_enrol_fail,)),
                             403: Reply("The token is another user's.", (_enrol_fail,))}),
             body=FaceFields, content=(MULTIPART,), auth=Auth.USER, auth_optional=True),
    *(_image_route(method, "/face", "Who the faces in a photo are", ImageFields, FaceOk,
                   _face_fail, _face) for method in ("GET", "POST")),
    *(_image_route(method, "/distance", "How far the largest face is from the camera",
                   DistanceFields, DistanceOk, _distance_fail, _distance)
      for method in ("GET", "POST")),
    *(_image_route(method, "/personal_color", "The season of the largest face's colouring",
                   ImageFields, ColourOk, _colour_fail, _colour) for method in ("GET", "POST")),
)

FAMILY = Family(TAG, "Seeds 000/001: accounts and faces.", ENDPOINTS, (Fail000,))
