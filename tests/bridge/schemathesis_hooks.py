"""Schemathesis hooks for tests/bridge/test_schemathesis.py (loaded by ``SCHEMATHESIS_HOOKS``):
the one check of our own, that no reply is a 5xx other than 503 and 504; and few frames for
``/liveness/verify``, so that its examples stay quick whatever count the document allows."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response
from schemathesis.hooks import HookContext

from schemas.liveness import MIN_FRAMES

# The only server errors a healthy stack may answer: a service away (503) or silent (504).
ALLOWED = frozenset({503, 504})
# Frames a generated verification sends at most: enough for a count the route takes, few
# enough that vision answers at once (random bytes fail as images at the first frame anyway).
FRAMES_SENT = MIN_FRAMES + 1


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Like schemathesis' ``not_a_server_error``, but 503 and 504 are documented answers."""
    if response.status_code >= 500 and response.status_code not in ALLOWED:
        raise AssertionError(f"{response.status_code} from {case.method} {case.path}: "
                             f"{response.text[:300]}")
    return None


@schemathesis.hook
def map_body(context: HookContext, body: Any) -> Any:
    """A verification's ``frames`` cut to :data:`FRAMES_SENT` (a list of any length the
    document allows is generated; its length, up to 30, changes nothing but the time)."""
    operation = context.operation
    if (operation is not None and operation.path == "/liveness/verify"
            and isinstance(body, dict) and isinstance(body.get("frames"), list)):
        return {**body, "frames": body["frames"][:FRAMES_SENT]}
    return body
