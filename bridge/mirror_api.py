"""Routes of the smart-mirror API (seeds 000 and 001): accounts and faces.

Each route reads the documented fields (form or JSON), relays them to a service over MQTT and
answers the documented shape. Field names, paths and reply ``type`` values are the contract.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.forms import Upload
from bridge.replies import HttpFail, bearer_token, bearer_user, call, fields_of, relay, success
from schemas.auth import (
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AuthError,
)
from schemas.topics import Operation
from schemas.vision import (
    IMAGE_ERRORS,
    IMAGE_MAX_BYTES,
    VISION_COLOUR,
    VISION_DISTANCE,
    VISION_ENROL,
    VISION_RECOGNISE,
    VisionError,
)

Rep = TypeVar("Rep", bound=BaseModel)

ACCOUNT_BODY_LIMIT = 64 * 1024
IMAGE_BODY_LIMIT = IMAGE_MAX_BYTES + 64 * 1024


async def _image_fields(request: Request, type_: str, name: str) -> tuple[dict[str, Any], str]:
    """The request's fields and its ``name`` file, base64-encoded for the vision service."""
    fields = await fields_of(request, type_, IMAGE_BODY_LIMIT)
    upload = fields.get(name)
    if not isinstance(upload, Upload):
        raise HttpFail(type_, f"{name}: is required (a JPEG or PNG file)", 400, field=name)
    return fields, base64.b64encode(upload.data).decode()


async def _ask_vision(
    request: Request, type_: str, operation: Operation[Any, Rep], body: dict[str, Any],
    domain_status: dict[str, int] | None = None,
) -> Rep:
    try:
        return await call(request, type_, operation, body, domain_status=domain_status)
    except HttpFail as exc:
        if exc.code in IMAGE_ERRORS:  # the file itself: seed 001's "save_image" failure
            exc.type = "save_image"
        raise


async def register_face(request: Request) -> JSONResponse:
    """Seed 000 names the person ``displayname``, seed 001 ``username``: either is accepted.

    With ``Authorization: Bearer <token>`` of that user the photo is bound to the account and
    unlocks their messages at a mirror; the vision service checks the token with auth itself
    (services/vision/trust.py). Another user's token is a 403, a bad one a 401."""
    token = bearer_token(request, "register_face", required=False)
    fields, image = await _image_fields(request, "register_face", "face_image")
    field = "displayname" if "displayname" in fields else "username"
    name = fields.get(field)
    if not isinstance(name, str) or not name.strip():
        raise HttpFail("register_face", "displayname (or username): is required", 400,
                       field="displayname")
    body = {"name": name.strip(), "image": image, "token": token}
    try:
        await _ask_vision(request, "register_face", VISION_ENROL, body,
                          {AuthError.TOKEN_INVALID: 401, VisionError.WRONG_USER: 403})
    except HttpFail as exc:
        if exc.code == VisionError.WRONG_USER:
            exc.extra["field"] = field  # the form's own name for the person
        elif exc.code == AuthError.TOKEN_INVALID:
            exc.extra.pop("field", None)  # a header, as every other 401 says without a field
        raise
    return success("register_face")


async def recognise_face(request: Request) -> JSONResponse:
    """``face`` names the largest face (``"unknown"`` for somebody not enrolled); ``faces``
    lists every face, largest first."""
    _, image = await _image_fields(request, "face", "face_image")
    reply = await _ask_vision(request, "face", VISION_RECOGNISE, {"image": image})
    faces = [
        {"name": face.name or "unknown", "known": face.name is not None,
         "box": list(face.box), "distance": face.distance}
        for face in reply.faces
    ]
    return success("face", face=faces[0]["name"], faces=faces, distance=reply.distance)


async def whoami(request: Request) -> JSONResponse:
    """The user a bearer token belongs to; what a client checks before trusting a token."""
    return success("whoami", username=await bearer_user(request, "whoami"))


async def distance(request: Request) -> JSONResponse:
    """Centimetres from the camera to the largest face; ``model_code`` (optional) picks the
    mirror model's camera. No face: seed 001's fail reply, with distance 0."""
    fields, image = await _image_fields(request, "distance", "distance_image")
    body = {"image": image, "model_code": fields.get("model_code")}
    try:
        reply = await _ask_vision(request, "distance", VISION_DISTANCE, body)
    except HttpFail as exc:
        if exc.code == VisionError.NO_FACE:
            exc.extra["distance"] = 0
        raise
    return success("distance", distance=reply.distance)


async def personal_color(request: Request) -> JSONResponse:
    """``tone`` is the season (spring, summer, autumn, winter); ``undertone`` and ``depth``
    say why (docs/vision.md)."""
    _, image = await _image_fields(request, "personal_color", "face_image")
    reply = await _ask_vision(request, "personal_color", VISION_COLOUR, {"image": image})
    return success("personal_color", tone=reply.tone, undertone=reply.undertone,
                   depth=reply.depth)


routes = [
    relay("/login", "login", AUTH_LOGIN, ACCOUNT_BODY_LIMIT, lambda r: {"token": r.token},
          throttled=True),
    relay("/register/user", "register_user", AUTH_REGISTER, ACCOUNT_BODY_LIMIT, lambda r: {},
          required=("email",)),
    relay("/reset_password", "reset_password", AUTH_RESET, ACCOUNT_BODY_LIMIT,
          lambda r: {"message": r.message}, throttled=True),
    relay("/reset_password/confirm", "reset_password_confirm", AUTH_RESET_CONFIRM,
          ACCOUNT_BODY_LIMIT, lambda r: {"message": "Password changed"}),
    Route("/whoami", whoami, methods=["GET"]),
    Route("/register/face", register_face, methods=["POST"]),
    # GET as documented; POST too, since many clients cannot send a body with GET.
    Route("/face", recognise_face, methods=["GET", "POST"]),
    Route("/distance", distance, methods=["GET", "POST"]),
    Route("/personal_color", personal_color, methods=["GET", "POST"]),
]
