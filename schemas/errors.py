"""The mirrorhub error tree.

::

    MirrorhubError
    ├── ConfigError            bad settings, found at start-up
    ├── DatabaseError          a service's database cannot be opened (damaged file, server down)
    ├── BrokerError            the embedded broker cannot start (port taken, bad config)
    ├── BusError               the MQTT side of a call failed
    │   ├── BusUnavailable     not connected to the broker (bridge: 503)
    │   ├── RequestTimeout     no reply within the deadline (bridge: 504)
    │   └── AccessDenied       the broker refused a subscription to this account
    └── ServiceError           a typed error reply: ``code``, ``message``, optional ``field``,
                               ``reason`` and ``retry_after``

Handlers raise :class:`ServiceError`; the service runner turns it into an error reply and the
caller's :meth:`broker.client.Bus.request` raises it again on the other side.
Library and connection errors (amqtt, paho-mqtt) are re-raised as these with ``from exc``.
It lives in ``schemas`` so that every package (services, bridge, devices) can import it without
depending on the MQTT side.
"""

from __future__ import annotations

from typing import Any

from schemas.envelope import ErrorBody


class MirrorhubError(Exception):
    """Root of every error mirrorhub raises on purpose."""


class ConfigError(MirrorhubError):
    """Settings are missing or malformed."""


class DatabaseError(MirrorhubError):
    """A service's database cannot be opened or migrated; the message names it and says why."""


class BrokerError(MirrorhubError):
    """The embedded broker could not start or stop."""


class BusError(MirrorhubError):
    """An MQTT operation failed."""


class BusUnavailable(BusError):
    """The client is not connected to the broker."""


class AccessDenied(BusError):
    """The broker refused a subscription: the account may not read that topic."""


class RequestTimeout(BusError):
    """No reply arrived before the deadline."""

    def __init__(self, topic: str, timeout: float) -> None:
        super().__init__(f"no reply on {topic} within {timeout:g} s")
        self.topic = topic
        self.timeout = timeout


class ServiceError(MirrorhubError):
    """A typed failure that crosses the wire as ``{"code", "message", "field", "reason",
    "retry_after"}`` (:class:`schemas.envelope.ErrorBody` says what each means)."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str | None = None,
        *,
        reason: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.reason = reason
        self.retry_after = retry_after

    def __reduce__(self) -> tuple[Any, ...]:
        # Crosses process boundaries (vision's worker processes raise it) as a plain
        # ServiceError with all its parts (the keyword-only ones through its __dict__).
        return (ServiceError, (self.code, self.message, self.field), self.__dict__)

    def to_body(self) -> ErrorBody:
        return ErrorBody(code=str(self.code), message=self.message, field=self.field,
                         reason=self.reason, retry_after=self.retry_after)

    @classmethod
    def from_body(cls, body: ErrorBody) -> ServiceError:
        return cls(body.code, body.message, body.field, reason=body.reason,
                   retry_after=body.retry_after)

    def __repr__(self) -> str:
        return (f"ServiceError({self.code!r}, {self.message!r}, field={self.field!r}, "
                f"reason={self.reason!r}, retry_after={self.retry_after!r})")
