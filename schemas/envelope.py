"""The request/reply envelope carried in MQTT payloads.

MQTT 3.1.1 (amqtt) has no response-topic or correlation properties, so a request carries its own::

    {"id": "3f2a...", "reply_to": "reply/bridge-1a2b", "body": {...}, "deadline": 1795000000.5,
     "request_id": "9c41..."}

and the reply, published to ``reply_to``, echoes the id and holds either a body or a typed error::

    {"id": "3f2a...", "ok": true,  "body": {...}}
    {"id": "3f2a...", "ok": false,
     "error": {"code": "invalid", "message": "...", "field": "username"}}

Error codes common to every service are listed in :class:`ErrorCode`; a service may add its own
(documented with its operations).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from schemas.topics import Topic

REQUEST_ID_MAX = 128
REPLY_TOPIC_MAX = 256
REPLY_TO_PATTERN = r"^reply/[^/#+\x00]+$"
# What a request id may be: it is written into log lines and envelopes as it is.
REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:@+=-]{1,128}$"


class ErrorCode(StrEnum):
    """Error codes every service may answer with."""

    BAD_REQUEST = "bad_request"  # payload is not JSON or not an envelope
    INVALID = "invalid"  # the body fails validation; ``field`` names the culprit
    TOO_LARGE = "too_large"  # the payload exceeds the service's limit
    INTERNAL = "internal"  # the service failed; details are in its log, not on the wire
    UNAVAILABLE = "unavailable"  # a dependency of the service is down
    THROTTLED = "throttled"  # too many failed attempts: ``retry_after`` says when to try again


class ErrorBody(BaseModel):
    """A typed error: a stable ``code``, a human ``message`` and, for bad input, the ``field``.

    Two optional parts say more where a caller acts on it: ``reason``, a stable word refining
    ``code`` (why a token is ``token_invalid``: :class:`schemas.auth.TokenReason`), and
    ``retry_after``, the seconds after which the same request may succeed (``throttled``).
    Both are left out of the wire when absent, so errors without them look as they always did.
    """

    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    message: str = Field(max_length=1000)
    field: str | None = None
    reason: str | None = Field(default=None, min_length=1, max_length=64)
    retry_after: int | None = Field(default=None, ge=0)


class RequestEnvelope(BaseModel):
    """A request as published to ``svc/{service}/{operation}``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=REQUEST_ID_MAX)
    # Replies go only to reply topics (REPLY), never onto a mirror's display or a service's
    # requests: a service answering on any topic a caller names would publish for that caller.
    reply_to: str = Field(min_length=1, max_length=REPLY_TOPIC_MAX, pattern=REPLY_TO_PATTERN)
    body: dict[str, Any] = Field(default_factory=dict)
    # Unix time after which the caller no longer waits: a service drops the request unanswered
    # and undone (one that queued at the broker while the service was down, say). Finite: a
    # NaN deadline would never expire.
    deadline: float | None = Field(default=None, allow_inf_nan=False)
    # The id of the outside request (HTTP, a command) this call serves, for following it
    # through the logs of every process (broker/tracing.py); not the call's own ``id``.
    # Optional: envelopes without it are as valid as before.
    request_id: str | None = Field(default=None, pattern=REQUEST_ID_PATTERN)


class ReplyEnvelope(BaseModel):
    """A reply as published to the request's ``reply_to``."""

    model_config = ConfigDict(extra="forbid")

    id: str
    ok: bool
    body: dict[str, Any] | None = None
    error: ErrorBody | None = None


REPLY = Topic(
    "reply/{client_id}", ReplyEnvelope,
    "Where a caller hears its replies: the request's reply_to. mirrorhub's clients subscribe to"
    " reply/{client_id}; from a terminal any one level will do (reply/me).",
)
