"""Payloads and topics of liveness over HTTP (``POST /liveness/...``), served by vision.

An app asks for a challenge (``svc/vision/liveness_challenge``): steps to perform, in a signed,
self-contained ``challenge_id`` that any vision worker can check without asking the one that
made it. It then sends the frames it filmed (``svc/vision/liveness_verify``), with the
challenge or without one for the passive verdict. Both name the ``username`` the bridge checked
the caller's token for: a challenge is good only for the user it was made for. Only internal
accounts (the bridge, the services, the operator) may publish on ``svc/vision/...``
(broker/access.py).

A verdict is a reply whatever it says, failures included (no face, several faces, frames of
two people, a frame that is no image, a challenge expired, forged or used): ``live`` false and
``reason`` says why. Error replies are kept for requests that cannot be judged at all (an
invalid body, a payload over the limit). docs/http-api.md (Liveness) has the details.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.names import USERNAME_MAX
from schemas.topics import Operation, Topic
from schemas.vision import ImageBytes

MIN_FRAMES = 2
MAX_FRAMES = 30
CHALLENGE_ID_MAX = 1024  # a signed challenge is about 300 characters


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class LivenessChallengeRequest(_Request):
    username: str = Field(min_length=1, max_length=USERNAME_MAX)


class LivenessStep(BaseModel):
    """One thing to do in front of the camera: ``action`` is ``turn_left`` or ``turn_right``
    (the person's own left or right), ``prompt`` the words an app may show."""

    action: str
    prompt: str


class LivenessChallenge(BaseModel):
    """``expires_in``: seconds from now within which the frames must be verified."""

    challenge_id: str
    steps: list[LivenessStep]
    expires_in: int


class LivenessVerifyRequest(_Request):
    """``frames`` in the order they were filmed; the count is judged, not validated, below
    :data:`MAX_FRAMES` (fewer than :data:`MIN_FRAMES` is a failed verdict)."""

    username: str = Field(min_length=1, max_length=USERNAME_MAX)
    frames: list[ImageBytes] = Field(max_length=MAX_FRAMES)
    challenge_id: str | None = Field(default=None, max_length=CHALLENGE_ID_MAX)


class LivenessVerdict(BaseModel):
    """``score``: how far the frames went towards the evidence asked for, 1 and more when it
    is enough (services/vision/liveness.py); 0 when they could not be judged."""

    live: bool
    score: float
    reason: str


class ChallengeUsed(BaseModel):
    """A worker started verifying a challenge: every other worker refuses it from now on.
    ``expires_at`` (Unix seconds) is when it can be forgotten."""

    nonce: str = Field(max_length=64)
    expires_at: int
    worker: str


VISION_LIVENESS_CHALLENGE = Operation(
    "svc/vision/liveness_challenge", LivenessChallengeRequest,
    "A signed head-turn challenge for a user.", reply=LivenessChallenge,
)
VISION_LIVENESS_VERIFY = Operation(
    "svc/vision/liveness_verify", LivenessVerifyRequest,
    "Whether a sequence of frames shows a live head, with or without a challenge.",
    reply=LivenessVerdict,
)
VISION_CHALLENGE_USED = Topic(
    "events/vision/challenge_used", ChallengeUsed,
    "A liveness challenge was presented; every worker refuses it from now on.",
)
