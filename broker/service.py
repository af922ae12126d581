"""Serving a table of request handlers over the bus.

A service declares its handlers as a list you can read and inspect::

    def handlers(auth: Accounts) -> list[Handler]:
        return [
            Handler(AUTH_REGISTER, auth.register),
            Handler(AUTH_LOGIN, auth.login),
        ]

and :class:`ServiceRunner` subscribes each operation's topic (through ``$share/<group>/`` when
the broker supports shared subscriptions), validates envelope and body, calls the handler and
publishes the reply. Nothing a message carries can stop the service: bad JSON, a wrong envelope,
an invalid body, an oversized payload or a handler crash each become a typed error reply, or,
when there is nobody to reply to, a ``events/{service}/rejected`` event and a log line.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Self

from pydantic import BaseModel, ValidationError

from broker.client import Bus, Message, MessageCallback
from broker.protocol import Will
from broker.settings import BusSettings
from schemas.envelope import ErrorCode, RequestEnvelope
from schemas.errors import BusUnavailable, ServiceError
from schemas.service import REJECTED, SERVICE_STATUS, Rejected, ServiceStatus
from schemas.topics import Operation

log = logging.getLogger(__name__)

DEFAULT_MAX_PAYLOAD = 256 * 1024
_HEAD = 2048  # bytes scanned for id and reply_to when the payload is too large to parse
_HEAD_FIELD = re.compile(rb'"(id|reply_to)"\s*:\s*"([^"\\#+]{1,256})"')


@dataclass(frozen=True)
class Handler:
    """One row of a service's table: an operation and the coroutine that answers it."""

    operation: Operation[Any, Any]
    func: Callable[[Any], Awaitable[BaseModel]]
    # 1 for operations whose requests the broker should keep while the service is away (with a
    # persistent session); the handler must then be idempotent, since QoS 1 may deliver twice.
    qos: int = 0


def check_table(handlers: Sequence[Handler]) -> None:
    """Refuse a table that registers one topic twice (the second would never be reached)."""
    seen: set[str] = set()
    for handler in handlers:
        template = handler.operation.template
        if template in seen:
            raise ValueError(f"topic {template} is registered twice")
        seen.add(template)


def validation_error(exc: ValidationError) -> ServiceError:
    """The first problem of a pydantic error as an ``invalid`` error naming the field."""
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = first["msg"] if first["type"] != "missing" else "is required"
    # Our validators raise ValueError with a full sentence; pydantic's prefix adds nothing.
    message = message.removeprefix("Value error, ")
    return ServiceError(ErrorCode.INVALID, f"{field}: {message}" if field else message, field)


class ServiceRunner:
    """Answers the operations of one service until the context exits."""

    def __init__(
        self,
        bus: Bus,
        service: str,
        handlers: Sequence[Handler],
        *,
        max_payload: int = DEFAULT_MAX_PAYLOAD,
    ) -> None:
        check_table(handlers)
        self.bus = bus
        self.service = service
        self.handlers = tuple(handlers)
        self.max_payload = max_payload

    async def __aenter__(self) -> Self:
        for handler in self.handlers:
            await self.bus.subscribe(handler.operation.filter, self._callback(handler),
                                     qos=handler.qos, shared=True)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _callback(self, handler: Handler) -> MessageCallback:
        async def on_message(message: Message) -> None:
            await self._handle(handler, message.topic, message.payload)

        return on_message

    async def _handle(self, handler: Handler, topic: str, payload: bytes) -> None:
        if len(payload) > self.max_payload:
            head = {k.decode(): v.decode() for k, v in _HEAD_FIELD.findall(payload[:_HEAD])}
            error = ServiceError(
                ErrorCode.TOO_LARGE,
                f"payload of {len(payload)} bytes exceeds the limit of {self.max_payload}",
            )
            await self._reply_or_reject(topic, head, error)
            return
        try:
            envelope = RequestEnvelope.model_validate_json(payload)  # one parse when all is well
        except ValidationError as exc:
            try:
                data = json.loads(payload)
            except (UnicodeDecodeError, json.JSONDecodeError) as not_json:
                await self._reject(
                    topic, ServiceError(ErrorCode.BAD_REQUEST, f"not JSON: {not_json}")
                )
                return
            error = validation_error(exc)
            error.code = ErrorCode.BAD_REQUEST
            error.message = f"not a request envelope: {error.message}"
            await self._reply_or_reject(topic, data if isinstance(data, dict) else {}, error)
            return
        if envelope.deadline is not None and time.time() > envelope.deadline:
            # The caller gave up and told its client so: doing it now would make that a lie.
            log.info("%s dropped an expired request %s on %s", self.service, envelope.id, topic)
            return
        body = await self._call(handler, envelope.body)
        await self._send(envelope.reply_to, envelope.id, body)

    async def _call(self, handler: Handler, raw: dict[str, Any]) -> BaseModel | ServiceError:
        try:
            request = handler.operation.payload.model_validate(raw)  # type: ignore[union-attr]
        except ValidationError as exc:
            return validation_error(exc)
        try:
            return await handler.func(request)
        except ServiceError as exc:
            return exc
        except Exception:
            log.exception("%s failed on %s", self.service, handler.operation.template)
            return ServiceError(ErrorCode.INTERNAL, f"{self.service} failed; see its log")

    async def _send(self, reply_to: str, request_id: str, body: BaseModel | ServiceError) -> None:
        # A ReplyEnvelope, written out directly (the hot path of every call). Absent parts are
        # left out, not null: {"id", "ok", "body"} or {"id", "ok", "error"}.
        reply: dict[str, Any] = {"id": request_id, "ok": not isinstance(body, ServiceError)}
        if isinstance(body, ServiceError):
            reply["error"] = body.to_body().model_dump(exclude_none=True)
        else:
            reply["body"] = body.model_dump(mode="json")
        try:
            await self.bus.publish(reply_to, reply, qos=0, wait=2.0)
        except BusUnavailable:
            log.warning("%s: reply to %s lost, broker unreachable", self.service, reply_to)

    async def _reply_or_reject(self, topic: str, data: Any, error: ServiceError) -> None:
        request_id, reply_to = data.get("id"), data.get("reply_to")
        if (
            isinstance(request_id, str) and request_id
            and isinstance(reply_to, str) and reply_to and not set(reply_to) & set("#+\0")
        ):
            await self._send(reply_to, request_id[:128], error)
        else:
            await self._reject(topic, error)

    async def _reject(self, topic: str, error: ServiceError) -> None:
        log.warning("%s rejected a message on %s: %s", self.service, topic, error.message)
        event = Rejected(topic=topic, error=error.to_body())
        with contextlib.suppress(BusUnavailable):
            await self.bus.publish(REJECTED.format(service=self.service), event, qos=0)


def persistent_client_id(settings: BusSettings, name: str) -> str:
    """A client id that stays the same across restarts (so the broker keeps the session), and
    differs between deployments sharing a broker through their namespaces."""
    prefix = settings.namespace.strip("/").replace("/", "-")
    return f"{prefix}-{name}" if prefix else name


def service_bus(settings: BusSettings, service: str, *, instance: str | None = None) -> Bus:
    """A Bus for one instance of ``service``: ``online`` on every connect, ``offline`` on a clean
    close and, as the Last Will, when the process vanishes.

    With ``instance`` the Bus has a persistent session under a stable client id
    (``{service}-{instance}``): QoS 1 requests published while it is away wait at the broker.
    """
    if instance is None:
        client_id = f"{service}-{uuid.uuid4().hex[:12]}"
    else:
        client_id = persistent_client_id(settings, f"{service}-{instance}")
    status_topic = SERVICE_STATUS.format(service=service)
    offline = ServiceStatus(client_id=client_id, state="offline").model_dump_json()
    bus = Bus(settings, client_id=client_id, role=service,
              will=Will(status_topic, offline, qos=1),
              clean_session=instance is None)

    async def online() -> None:
        await bus.publish(status_topic, ServiceStatus(client_id=client_id, state="online"))

    async def closing() -> None:
        await bus.publish(status_topic, offline)

    bus.on_connect(online)
    bus.on_close(closing)
    return bus
