"""The request id: one id per request from outside (an HTTP request, an operator's command),
carried through every MQTT call made for it, so that its log lines can be found in every process
it touched.

The bridge sets it for each HTTP request (the client's ``X-Request-ID`` when it is a usable one,
else a new one) in :data:`REQUEST_ID`, a context variable: everything that runs for the request
(tasks included) sees it. :meth:`broker.client.Bus.request` puts it into the request envelope's
``request_id`` (:class:`schemas.envelope.RequestEnvelope`), and the service runner sets it again
while the handler runs, so the handler's own calls carry it further. Log records get it from
:class:`RequestIdFilter` (mirrorhub/logs.py installs it).

It is a label for following logs, nothing more: no service trusts or decides anything by it.
"""

from __future__ import annotations

import contextlib
import logging
import re
import uuid
from collections.abc import Iterator
from contextvars import ContextVar

from schemas.envelope import REQUEST_ID_PATTERN

REQUEST_ID: ContextVar[str | None] = ContextVar("mirrorhub_request_id", default=None)
_USABLE = re.compile(REQUEST_ID_PATTERN)


def new_request_id() -> str:
    return uuid.uuid4().hex


def usable(candidate: str | None) -> str | None:
    """``candidate`` if it may travel as a request id (it ends up in log lines and envelopes:
    short, and no characters that could forge a line or need escaping), else None."""
    return candidate if candidate is not None and _USABLE.fullmatch(candidate) else None


@contextlib.contextmanager
def request_id(value: str | None) -> Iterator[str | None]:
    """Make ``value`` (a :func:`usable` one, or None) the current request id until the
    context exits."""
    if value is not None and usable(value) is None:
        raise ValueError(f"not a usable request id: {value!r}")
    token = REQUEST_ID.set(value)
    try:
        yield value
    finally:
        REQUEST_ID.reset(token)


class RequestIdFilter(logging.Filter):
    """Gives every record a ``request_id`` attribute: the current one, or None."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True
