"""Answering requests: from a payload on ``svc/{service}/{operation}`` to a reply on the
caller's reply topic.

:class:`ServiceRunner` subscribes each operation's topic (through ``$share/<group>/`` when the
broker supports shared subscriptions), validates envelope and body, calls the handler and
publishes the reply. Nothing a message carries can stop the service: bad JSON, JSON nested too
deep to parse, a wrong envelope, an invalid body, an oversized payload or a handler crash each
become a typed error reply, or, when there is nobody to reply to, a ``events/{service}/rejected``
event and a log line.

Replies go only to reply topics (``reply/{client_id}``, :data:`schemas.envelope.REPLY`): a
request naming any other ``reply_to`` (a mirror's display, another service's requests) is
rejected, never answered there. A request whose ``deadline`` has passed is dropped unanswered.
A handler's failure that the service's ``unavailable`` hook explains (its database server is
away, say) is answered ``unavailable`` ("try again") with one log line, not ``internal``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from broker.client import Bus, Message, MessageCallback
from broker.metrics import HANDLED, HANDLER_SECONDS, labelled
from broker.tracing import request_id
from schemas.envelope import REPLY_TO_PATTERN, REQUEST_ID_MAX, ErrorCode, RequestEnvelope
from schemas.errors import BusUnavailable, ServiceError
from schemas.service import REJECTED, Rejected
from schemas.topics import Operation, safe_topic_text

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD = 256 * 1024
_HEAD = 2048  # bytes scanned for id and reply_to when the payload cannot be parsed
_REPLY_TO = re.compile(REPLY_TO_PATTERN)  # the envelope's own rule, for payloads it refused
_HEAD_FIELD = re.compile(rb'"(id|reply_to)"\s*:\s*"([^"\\#+]{1,256})"')


@dataclass(frozen=True)
class Answer:
    """One operation a runner answers, with the coroutine (already bound) that answers it."""

    operation: Operation[Any, Any]
    func: Callable[..., Awaitable[BaseModel]]
    qos: int = 0


# Why an exception a handler raised means that something the service depends on is away (its
# database server), not that the service failed: a sentence, or None for any other error.
Unavailable = Callable[[Exception], str | None]


def validation_error(exc: ValidationError) -> ServiceError:
    """The first problem of a pydantic error as an ``invalid`` error naming the field."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"] if first["type"] != "missing" else "is required"
    # Our validators raise ValueError with a full sentence; pydantic's prefix adds nothing.
    message = message.removeprefix("Value error, ")
    return ServiceError(ErrorCode.INVALID, f"{field}: {message}" if field else message, field)


def _head_fields(payload: bytes) -> dict[str, str]:
    """``id`` and ``reply_to`` read off the start of a payload that cannot be parsed whole."""
    return {k.decode(): v.decode() for k, v in _HEAD_FIELD.findall(payload[:_HEAD])}


class ServiceRunner:
    """Answers ``answers`` for service ``service`` from entering until the context exits."""

    def __init__(
        self,
        bus: Bus,
        service: str,
        answers: Sequence[Answer],
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
        unavailable: Unavailable | None = None,
    ) -> None:
        self.bus = bus
        self.service = service
        self.answers = tuple(answers)
        self.max_payload = max_payload
        self.unavailable = unavailable

    async def __aenter__(self) -> Self:
        for answer in self.answers:
            await self.bus.subscribe(answer.operation, self._callback(answer), qos=answer.qos,
                                     shared=True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _callback(self, answer: Answer) -> MessageCallback:
        async def on_message(message: Message) -> None:
            await self._handle(answer, message)

        return on_message

    async def _handle(self, answer: Answer, message: Message) -> None:
        topic, payload = message.topic, message.payload
        if len(payload) > self.max_payload:
            error = ServiceError(
                ErrorCode.TOO_LARGE,
                f"payload of {len(payload)} bytes exceeds the limit of {self.max_payload}",
            )
            await self._reply_or_reject(topic, _head_fields(payload), error)
            self._count(answer, ErrorCode.TOO_LARGE)
            return
        try:
            envelope = RequestEnvelope.model_validate_json(payload)  # one parse when all is well
        except ValidationError as exc:
            await self._refuse(topic, payload, exc)
            self._count(answer, ErrorCode.BAD_REQUEST)
            return
        if envelope.deadline is not None and time.time() > envelope.deadline:
            # The caller gave up and told its client so: doing it now would make that a lie.
            log.info("%s dropped an expired request %s on %s", self.service, envelope.id, topic)
            self._count(answer, "expired")
            return
        with request_id(envelope.request_id):  # the handler's log lines and calls carry it
            started = time.perf_counter()
            body = await self._call(answer, envelope.body, message.params)
            took = time.perf_counter() - started
            outcome = body.code if isinstance(body, ServiceError) else "ok"
            labelled(HANDLER_SECONDS, self.service, answer.operation.template).observe(took)
            self._count(answer, outcome)
            log.debug("%s answered %s in %.1f ms: %s", self.service, topic, took * 1000, outcome)
            await self._send(envelope.reply_to, envelope.id, body)

    def _count(self, answer: Answer, outcome: str) -> None:
        labelled(HANDLED, self.service, answer.operation.template, str(outcome)).inc()

    async def _refuse(self, topic: str, payload: bytes, exc: ValidationError) -> None:
        """A payload that is not a valid envelope: say why, to its sender if it names one."""
        try:
            data = json.loads(payload)
        except (UnicodeDecodeError, json.JSONDecodeError) as not_json:
            await self._reject(topic, ServiceError(ErrorCode.BAD_REQUEST, f"not JSON: {not_json}"))
            return
        except RecursionError:
            error = ServiceError(ErrorCode.BAD_REQUEST, "JSON nested too deeply to read")
            await self._reply_or_reject(topic, _head_fields(payload), error)
            return
        error = validation_error(exc)
        error.code = ErrorCode.BAD_REQUEST
        error.message = f"not a request envelope: {error.message}"
        await self._reply_or_reject(topic, data if isinstance(data, dict) else {}, error)

    async def _call(self, answer: Answer, raw: dict[str, Any],
                    params: dict[str, str]) -> BaseModel | ServiceError:
        try:
            request = answer.operation.payload.model_validate(raw)  # type: ignore[union-attr]
        except ValidationError as exc:
            return validation_error(exc)
        try:
            return await answer.func(request, **params)
        except ServiceError as exc:
            return exc
        except Exception as exc:
            away = self.unavailable(exc) if self.unavailable is not None else None
            if away is not None:  # the caller may try again; a traceback would say nothing
                log.warning("%s could not answer %s: %s", self.service,
                            answer.operation.template, away)
                return ServiceError(ErrorCode.UNAVAILABLE, f"{self.service}: {away}; try again")
            log.exception("%s failed on %s", self.service, answer.operation.template)
            return ServiceError(ErrorCode.INTERNAL, f"{self.service} failed; see its log")

    async def _send(self, reply_to: str, request_id: str, body: BaseModel | ServiceError) -> None:
        # A ReplyEnvelope, written out directly around the body's JSON, made once from the
        # model (the hot path of every call). Absent parts are left out, not null:
        # {"id", "ok", "body"} or {"id", "ok", "error"}.
        head = b'{"id":%b,"ok":' % json.dumps(request_id).encode()
        if isinstance(body, ServiceError):
            reply = head + b'false,"error":%b}' % body.to_body().model_dump_json(
                exclude_none=True).encode()
        else:
            reply = head + b'true,"body":%b}' % body.model_dump_json().encode()
        try:
            await self.bus.publish_raw(reply_to, reply, qos=0, wait=2.0)
        except BusUnavailable:
            log.warning("%s: reply to %s lost, broker unreachable", self.service, reply_to)

    async def _reply_or_reject(self, topic: str, data: Any, error: ServiceError) -> None:
        request_id, reply_to = data.get("id"), data.get("reply_to")
        # The envelope's rule, and no lone surrogate: only json.loads (below the envelope's
        # parser, which refuses them) lets one through, and no topic can hold it.
        if (isinstance(request_id, str) and request_id and isinstance(reply_to, str)
                and _REPLY_TO.fullmatch(reply_to) and safe_topic_text(reply_to)):
            await self._send(reply_to, request_id[:REQUEST_ID_MAX], error)
        else:
            await self._reject(topic, error)

    async def _reject(self, topic: str, error: ServiceError) -> None:
        log.warning("%s rejected a message on %s: %s", self.service, topic, error.message)
        event = Rejected(topic=topic, error=error.to_body())
        with contextlib.suppress(BusUnavailable):
            await self.bus.publish(REJECTED, event, qos=0, service=self.service)
