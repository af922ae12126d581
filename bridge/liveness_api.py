"""Routes of liveness over HTTP for apps (``/liveness/...``), answered by the vision service.

Every reply has ``result`` and ``type`` (``"liveness"``); every failure, whatever its status,
is ``{"result": "fail", "type": "liveness", "live": false, "score": 0.0, "reason": ...}``, on
the family's paths for 404s and 405s too (bridge/app.py). Verdicts are 200s, failed ones
included (no face, several faces, two people, a frame that is no image, the frame count, a
challenge expired, forged, used or another user's): the request was fine, the frames did not
show a live head. Status codes are for the request itself: 401 without a user's login token,
413 over the size limit, 415 not a multipart form, 400 a malformed one, 503 and 504 when vision
is away or slow. Never a 500: a failure of the bridge or of vision is a 503.

Who may call: a logged-in user of any family, with the login token as ``Authorization: Bearer``
(seeds 000, 003) or in seed 004's ``X-LIVENESS-TOKEN`` cookie, checked by auth before the body
is read (a verification costs the vision service a second or more). An admin's token is not a
user's. A challenge is made for the token's user and fails for anybody else.
"""

from __future__ import annotations

import base64
from typing import Any, TypeVar

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.forms import BadBody, Upload, read_items
from bridge.replies import HttpFail, bearer_token, bus_of, call, retry_headers
from bridge.session_api import COOKIE
from schemas.auth import AUTH_VERIFY, TOKEN_MAX, AuthError
from schemas.liveness import (
    CHALLENGE_ID_MAX,
    MAX_FRAMES,
    MIN_FRAMES,
    VISION_LIVENESS_CHALLENGE,
    VISION_LIVENESS_VERIFY,
)
from schemas.topics import Operation
from schemas.vision import IMAGE_MAX_BYTES

Rep = TypeVar("Rep", bound=BaseModel)

TYPE = "liveness"
VERIFY_BODY_LIMIT = IMAGE_MAX_BYTES + 64 * 1024
# Files a form may hold before it is refused unread as malformed; up to it, a count outside
# MIN_FRAMES..MAX_FRAMES is a failed verdict that says the count.
MAX_FILE_PARTS = 2 * MAX_FRAMES
# Seconds a verification may take besides the bus's request timeout, per frame (dlib on a
# busy two-core machine: 0.1 to 0.3 s a frame).
FRAME_BUDGET = 1.0
NO_TOKEN = (f"log in first: send Authorization: Bearer <token> or the {COOKIE} cookie of a"
            " user's login")
MULTIPART = f"send multipart/form-data with {MIN_FRAMES} to {MAX_FRAMES} frames fields"


class LivenessFail(Exception):
    """Answer the family's failure with ``status``, ``reason`` saying why."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        response = answer(self.status, self.reason)
        response.headers.update(retry_headers(self.retry_after))
        return response


def answer(status: int, reason: str) -> JSONResponse:
    """The family's failure shape; a 500 (the bridge failed) is answered as a 503."""
    if status == 500:
        status, reason = 503, f"liveness could not be judged: {reason}"
    return JSONResponse({"result": "fail", "type": TYPE, "live": False, "score": 0.0,
                         "reason": reason}, status_code=status)


def family(path: str) -> bool:
    return path == "/liveness" or path.startswith("/liveness/")


async def _ask(request: Request, operation: Operation[Any, Rep], body: dict[str, Any],
               timeout: float | None = None) -> Rep:
    """:func:`bridge.replies.call` in this family's shape."""
    try:
        return await call(request, TYPE, operation, body,
                          domain_status={AuthError.TOKEN_INVALID: 401}, timeout=timeout)
    except HttpFail as exc:
        status = exc.status if exc.status >= 400 else 503  # a code nobody mapped
        raise LivenessFail(status, exc.message, exc.retry_after) from exc


async def _user(request: Request) -> str:
    """The user whose login token the request carries: the header's, else the cookie's."""
    try:
        token = bearer_token(request, TYPE, required=False)
    except HttpFail as exc:
        raise LivenessFail(401, NO_TOKEN) from exc
    token = token or request.cookies.get(COOKIE, "").strip()
    if not token or len(token) > TOKEN_MAX:
        raise LivenessFail(401, NO_TOKEN)
    try:
        reply = await _ask(request, AUTH_VERIFY, {"token": token})
    except LivenessFail as exc:
        if exc.status in (400, 401):
            raise LivenessFail(401, f"not a user's login token: {exc.reason}") from exc
        raise
    return reply.username


def _verdict(live: bool, score: float, reason: str) -> JSONResponse:
    return JSONResponse({"result": "success" if live else "fail", "type": TYPE, "live": live,
                         "score": score, "reason": reason})


async def challenge(request: Request) -> JSONResponse:
    """A head-turn challenge for the token's user: what to do, and the id to verify with."""
    reply = await _ask(request, VISION_LIVENESS_CHALLENGE, {"username": await _user(request)})
    return JSONResponse({"result": "success", "type": TYPE, **reply.model_dump()})


async def verify(request: Request) -> JSONResponse:
    """The verdict on the form's ``frames`` (in order), against its ``challenge_id`` if any."""
    user = await _user(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != (
            "multipart/form-data"):
        raise LivenessFail(415, MULTIPART)
    try:
        items = await read_items(request, VERIFY_BODY_LIMIT, max_files=MAX_FILE_PARTS)
    except BadBody as exc:
        raise LivenessFail(exc.status, exc.message) from exc
    frames = [value for name, value in items if name == "frames"]
    if not MIN_FRAMES <= len(frames) <= MAX_FRAMES:
        return _verdict(False, 0.0, f"{len(frames)} frames; send {MIN_FRAMES} to {MAX_FRAMES}")
    for number, frame in enumerate(frames, 1):
        if not isinstance(frame, Upload):
            return _verdict(False, 0.0, f"frame {number}: not a file (send a JPEG or PNG)")
    size = sum(len(frame.data) for frame in frames)
    if size > IMAGE_MAX_BYTES:
        raise LivenessFail(413, f"the frames take {size} bytes; the limit is {IMAGE_MAX_BYTES}")
    challenges = [value for name, value in items if name == "challenge_id"]
    challenge_id = challenges[-1] if challenges else None
    if isinstance(challenge_id, Upload):
        return _verdict(False, 0.0, "challenge_id: send it as a text field")
    challenge_id = (challenge_id or "").strip() or None  # a form's empty field: none
    if challenge_id is not None and len(challenge_id) > CHALLENGE_ID_MAX:
        return _verdict(False, 0.0, "the challenge is not one of ours (malformed)")
    body = {"username": user, "challenge_id": challenge_id,
            "frames": [base64.b64encode(frame.data).decode() for frame in frames]}
    timeout = bus_of(request).settings.request_timeout + FRAME_BUDGET * len(frames)
    reply = await _ask(request, VISION_LIVENESS_VERIFY, body, timeout)
    return _verdict(reply.live, reply.score, reply.reason)


routes = [
    Route("/liveness/challenge", challenge, methods=["POST"], name="liveness_challenge"),
    Route("/liveness/verify", verify, methods=["POST"], name="liveness_verify"),
]
