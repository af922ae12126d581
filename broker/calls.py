"""The request/reply bookkeeping of one :class:`broker.client.Bus`: the calls it has waiting.

A call gets a request id (hex, unique among this Bus's calls) and a future; its request goes out
as a :class:`~schemas.envelope.RequestEnvelope` naming the Bus's reply topic, and the
:class:`~schemas.envelope.ReplyEnvelope` that comes back on that topic resolves the future by
its id. Sending, deadlines and the connection stay with the Bus.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from typing import Any

from pydantic import ValidationError

from schemas.envelope import ReplyEnvelope
from schemas.errors import BusUnavailable, ServiceError

log = logging.getLogger(__name__)


class Calls:
    def __init__(self, client_id: str, reply_topic: str) -> None:
        self.client_id = client_id
        self._reply_to_json = json.dumps(reply_topic).encode()
        self._ids = itertools.count(1)
        self._pending: dict[str, asyncio.Future[ReplyEnvelope]] = {}

    def start(self, body: bytes, deadline: float, trace: str | None = None,
              ) -> tuple[str, asyncio.Future[ReplyEnvelope], bytes]:
        """A new call of the JSON ``body``, due by ``deadline`` (epoch seconds), made for the
        outside request ``trace`` (a request id, broker/tracing.py, already checked): its id,
        the future its reply resolves, and the request envelope to send. End it with
        :meth:`end`."""
        request_id = f"{next(self._ids):x}"
        future: asyncio.Future[ReplyEnvelope] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        # A RequestEnvelope, written out directly around the body's JSON: this is the hot path
        # of every call (the id is hex, the reply topic's JSON is made once).
        envelope = b'{"id":"%b","reply_to":%b,"deadline":%r,%b"body":%b}' % (
            request_id.encode(), self._reply_to_json, round(deadline, 3),
            b'"request_id":"%b",' % trace.encode() if trace else b"", body)
        return request_id, future, envelope

    def end(self, request_id: str) -> None:
        """Stop waiting for the call's reply (answered, timed out or cancelled)."""
        future = self._pending.pop(request_id)
        if future.done() and not future.cancelled():
            future.exception()  # a lost connection may have failed it while we published
        future.cancel()

    def resolve(self, payload: bytes) -> None:
        """A message on the reply topic: the reply of the call it names, if still waiting."""
        try:
            reply = ReplyEnvelope.model_validate_json(payload)
        except (ValidationError, ValueError, TypeError):
            log.warning("%s: malformed reply dropped", self.client_id)
            return
        future = self._pending.get(reply.id)
        if future is not None and not future.done():
            future.set_result(reply)

    def fail_all(self) -> None:
        """The connection is lost: with a clean session the broker forgets our reply
        subscription, so waiting is pointless."""
        for future in self._pending.values():
            if not future.done():
                future.set_exception(BusUnavailable("connection to the MQTT broker was lost"))


def reply_body(topic: str, reply: ReplyEnvelope) -> dict[str, Any]:
    """The body of a successful reply; a :class:`ServiceError` for an error reply."""
    if reply.ok:
        return reply.body or {}
    if reply.error is None:
        raise ServiceError("internal", f"{topic} answered with neither body nor error")
    raise ServiceError.from_body(reply.error)
