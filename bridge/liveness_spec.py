"""Declarations of the liveness routes (mirrorhub's own, :mod:`bridge.liveness_api`) for
``/openapi.json``: every reply is ``{"result", "type": "liveness", ...}``; every failure, whatever
its status, ``{"result": "fail", "type": "liveness", "live": false, "score": 0.0, "reason"}``.

Verdicts are 200s, failed ones included; the statuses are for the request itself. Neither
route answers a 500 (a failure of the bridge or of vision is a 503), nor, on its own path and
method, a 404 or a 405: those are the family's answers to other paths and methods under
``/liveness/`` (docs/http-api.md, Liveness), in the same shape.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bridge.spec import MULTIPART, REPLY, Auth, Endpoint, Family, Fields, Link, Reply, merged
from schemas.liveness import CHALLENGE_ID_MAX, MAX_FRAMES, MIN_FRAMES

TAG = "liveness"


class LivenessFailure(BaseModel):
    """Every failure of the family; ``score`` is always 0.0 and ``reason`` says why."""

    model_config = REPLY
    result: Literal["fail"]
    type: Literal["liveness"]
    live: Literal[False]
    score: float = Field(json_schema_extra={"const": 0.0})
    reason: str


class LivenessStepOut(BaseModel):
    model_config = REPLY
    action: Literal["turn_left", "turn_right"]
    prompt: str


class LivenessChallengeOk(BaseModel):
    """``challenge_id``: opaque, to send back with the frames within ``expires_in`` seconds."""

    model_config = REPLY
    result: Literal["success"]
    type: Literal["liveness"]
    challenge_id: str
    steps: list[LivenessStepOut]
    expires_in: int


class LivenessVerdictOut(BaseModel):
    """A verdict: ``live`` with ``result: success``; not live (the frames did not show a live
    head, or could not be judged, ``reason`` says why) with ``result: fail``."""

    model_config = REPLY
    result: Literal["success", "fail"]
    type: Literal["liveness"]
    live: bool
    score: float
    reason: str


class LivenessFields(Fields):
    frames: list[bytes] = Field(
        min_length=MIN_FRAMES, max_length=MAX_FRAMES,
        description="The frames in the order they were filmed, JPEG or PNG, one file part "
                    f"each ({MIN_FRAMES} to {MAX_FRAMES}; another count is a failed verdict).")
    challenge_id: str | None = Field(
        default=None, max_length=CHALLENGE_ID_MAX,
        description="The id /liveness/challenge gave, as a text part; empty is none.")


def _fail(description: str) -> Reply:
    return Reply(description, (LivenessFailure,))


_CALLS = {401: _fail("No user's login token (header or cookie), or a bad one, or an admin's."),
          503: _fail("The broker or the vision service is unavailable, or failed."),
          504: _fail("The vision service did not answer in time.")}
_READS = {400: _fail("A malformed multipart body (no boundary), or too many file parts."),
          413: _fail("The body or the frames together exceed the image size limit."),
          415: _fail("A body that is not multipart/form-data.")}
# The challenge's id goes with the frames (merged into the body generated for them).
_AFTER_CHALLENGE = (Link("Verify", "POST", "/liveness/verify",
                         body={"challenge_id": "$response.body#/challenge_id"}),)
# The header's token wins when both are sent; either alone will do.
_CREDENTIALS = (Auth.USER, Auth.SESSION)

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/liveness/challenge", TAG, "A head-turn challenge for the token's user",
             merged(_CALLS, {200: Reply("What to do, and the id to verify with.",
                                        (LivenessChallengeOk,), links=_AFTER_CHALLENGE)}),
             auth=_CREDENTIALS),
    Endpoint("POST", "/liveness/verify", TAG, "Whether the frames show a live head turning",
             merged(_CALLS, _READS, {200: Reply("The verdict, a failed one included.",
                                                (LivenessVerdictOut,))}),
             body=LivenessFields, content=(MULTIPART,), auth=_CREDENTIALS),
)

FAMILY = Family(TAG, "mirrorhub's own: is the face before the app's camera a live head? "
                     "Unknown paths under /liveness/ (404) and other methods (405) answer in "
                     "the failure shape too.", ENDPOINTS, (LivenessFailure,))
