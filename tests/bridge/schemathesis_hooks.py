"""Schemathesis hooks for tests/bridge/test_schemathesis.py (loaded by ``SCHEMATHESIS_HOOKS``):
the one check of our own, that no reply is a 5xx other than 503 and 504."""

from __future__ import annotations

from typing import Any

import schemathesis
from schemathesis import Case, CheckContext, Response

# The only server errors a healthy stack may answer: a service away (503) or silent (504).
ALLOWED = frozenset({503, 504})


@schemathesis.check
def no_server_error(ctx: CheckContext, response: Response, case: Case[Any]) -> bool | None:
    """Like schemathesis' ``not_a_server_error``, but 503 and 504 are documented answers."""
    if response.status_code >= 500 and response.status_code not in ALLOWED:
        raise AssertionError(f"{response.status_code} from {case.method} {case.path}: "
                             f"{response.text[:300]}")
    return None
