"""Turning bus calls into the documented JSON replies.

Every reply has ``result`` (``success`` or ``fail``) and ``type``; failures add ``message`` and,
for bad input, ``field``. Status codes (docs/http-api.md):

- 200 for success and for the documented domain failures (wrong password, ``exist user``, ...),
  as the original API did, so clients that read ``result`` keep working;
- 400 a missing or malformed field, 401 a missing or bad bearer token, 403 a token of another
  user than the one the request acts for, 413 a body over the limit, 415 an unsupported content
  type;
- 429 too many failed logins or resets (``Retry-After`` says for how long);
- 500 the service failed, 503 the broker or a service dependency is unavailable, 504 the service
  did not answer within ``MIRRORHUB_REQUEST_TIMEOUT``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.forms import BadBody, read_fields, text_fields
from broker.client import Bus
from broker.runner import validation_error
from schemas.auth import AUTH_VERIFY, AuthError
from schemas.envelope import ErrorCode
from schemas.errors import BusUnavailable, RequestTimeout, ServiceError
from schemas.messaging import MessageId
from schemas.names import normal_username
from schemas.topics import Operation

Rep = TypeVar("Rep", bound=BaseModel)

_STATUS: dict[str, int] = {
    ErrorCode.BAD_REQUEST: 400,
    ErrorCode.INVALID: 400,
    ErrorCode.TOO_LARGE: 413,
    ErrorCode.THROTTLED: 429,
    ErrorCode.INTERNAL: 500,
    ErrorCode.UNAVAILABLE: 503,
}


class HttpFail(Exception):
    """Answer ``{"result": "fail", "type": ..., "message": ...}`` with ``status``.

    ``code``, ``reason`` and ``retry_after`` are the service's error's, when a service answered
    (for the other families to translate); ``retry_after`` is also sent as ``Retry-After``."""

    def __init__(
        self, type_: str, message: str, status: int = 200, code: str | None = None, *,
        reason: str | None = None, retry_after: int | None = None, **extra: Any
    ) -> None:
        super().__init__(message)
        self.type = type_
        self.code = code
        self.reason = reason
        self.retry_after = retry_after
        self.message = message
        self.status = status
        self.extra = {k: v for k, v in extra.items() if v is not None}

    def response(self) -> JSONResponse:
        body = {"result": "fail", "type": self.type, "message": self.message, **self.extra}
        return JSONResponse(body, status_code=self.status, headers=retry_headers(self.retry_after))


def retry_headers(retry_after: int | None) -> dict[str, str]:
    """``Retry-After`` for a throttled request, in every family's replies."""
    return {} if retry_after is None else {"Retry-After": str(retry_after)}


def client_address(request: Request) -> str | None:
    """The client's address as the throttle counts it: the peer's, or, from a proxy the bridge
    trusts (``MIRRORHUB_TRUSTED_PROXIES``), the one it forwarded (uvicorn has put it in the
    ASGI scope already). None when there is no peer (a Unix socket)."""
    return request.client.host if request.client else None


def success(type_: str, **fields: Any) -> JSONResponse:
    return JSONResponse({"result": "success", "type": type_, **fields})


async def fields_of(request: Request, type_: str, limit: int) -> dict[str, Any]:
    try:
        return await read_fields(request, limit)
    except BadBody as exc:
        raise HttpFail(type_, exc.message, exc.status, field=exc.field) from exc


def bus_of(request: Request) -> Bus:
    bus: Bus = request.state.bus
    return bus


async def call(
    request: Request,
    type_: str,
    operation: Operation[Any, Rep],
    fields: dict[str, Any],
    *,
    domain_status: dict[str, int] | None = None,
    qos: int = 0,
    timeout_status: int = 504,
    timeout_message: str | None = None,
    timeout: float | None = None,
) -> Rep:
    """Validate ``fields`` against the operation's request model, send it, return the reply.

    Error replies become :class:`HttpFail`: the common codes get their status from the table
    above, the service's own codes get ``domain_status`` (default 200). ``qos`` and
    ``timeout`` (seconds; None: the bus's request timeout) are passed to :meth:`Bus.request`;
    an operation whose late requests are dropped unprocessed (sending a message) answers a
    timeout with ``timeout_status`` and ``timeout_message`` instead of 504.
    """
    assert operation.payload is not None
    try:
        body = operation.payload.model_validate(text_fields(fields))
    except ValidationError as exc:
        error = validation_error(exc)
        raise HttpFail(type_, error.message, 400, field=error.field) from exc
    try:
        return await bus_of(request).request(operation, body, qos=qos, timeout=timeout)
    except ServiceError as exc:
        status = _STATUS.get(exc.code, (domain_status or {}).get(exc.code, 200))
        raise HttpFail(type_, exc.message, status, exc.code, reason=exc.reason,
                       retry_after=exc.retry_after, field=exc.field) from exc
    except RequestTimeout as exc:
        message = timeout_message or f"the service did not answer within {exc.timeout:g} s"
        raise HttpFail(type_, message, timeout_status) from exc
    except BusUnavailable as exc:
        raise HttpFail(type_, f"service unavailable: {exc}", 503) from exc


class _Key(BaseModel):
    model_config = ConfigDict(strict=True)
    message_id: MessageId | None = None


def message_id_problem(fields: dict[str, Any]) -> ServiceError | None:
    """Why the ``message_id`` field is not a message id (None: it is one, or is absent). Asked
    also where an ``Idempotency-Key`` header wins over the field, so that a malformed field is
    refused (400 naming it) rather than silently dropped."""
    try:
        _Key.model_validate({"message_id": fields.get("message_id")})
    except ValidationError as exc:
        return validation_error(exc)
    return None


def bearer_token(request: Request, type_: str, *, required: bool = True) -> str | None:
    """A request's ``Authorization: Bearer`` token, unchecked; None when the request sends no
    ``Authorization`` and none is ``required``. A header that is not a bearer token, or none
    where one is required, is a 401."""
    header = request.headers.get("authorization")
    if header is None and not required:
        return None
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HttpFail(type_, "send Authorization: Bearer <token from /login>", 401)
    return token.strip()


def family_failure(exc: HttpFail, domain: dict[str, tuple[int, str]] | None) -> tuple[int, str]:
    """The status and message another family answers ``exc`` with: a service code in
    ``domain`` gets its own; others keep the common status and message, but a code nobody
    mapped (200 in seed 000's table) is a 500, since those families have no 200 failures."""
    status, message = (domain or {}).get(exc.code or "", (exc.status, exc.message))
    return (status if status >= 400 else 500), message


async def bearer_user(request: Request, type_: str, *, required: bool = True) -> str | None:
    """The user a request's ``Authorization: Bearer`` token belongs to, checked by auth; None
    when the request sends no token and none is ``required``. A bad token, or none where one is
    required, is a 401."""
    token = bearer_token(request, type_, required=required)
    if token is None:
        return None
    reply = await call(request, type_, AUTH_VERIFY, {"token": token},
                       domain_status={AuthError.TOKEN_INVALID: 401})
    return reply.username


async def acting_user(request: Request, type_: str, claimed: object, field: str) -> None:
    """With a bearer token (required when the bridge runs with ``require_token``), the field
    naming the acting user must be the token's user: 403 otherwise."""
    required: bool = getattr(request.state, "require_token", False)
    user = await bearer_user(request, type_, required=required)
    if user is None or not isinstance(claimed, str):
        return
    try:
        acting = normal_username(claimed)
    except ValueError:  # not a username at all: the request's validation answers 400
        return
    if acting != user:
        raise HttpFail(type_, f"the token belongs to {user}, not to {claimed}", 403, field=field)


def relay(
    path: str,
    type_: str,
    operation: Operation[Any, Rep],
    limit: int,
    answer: Callable[[Rep], dict[str, Any]],
    *,
    required: tuple[str, ...] = (),
    throttled: bool = False,
) -> Route:
    """A ``POST path`` route named ``type_`` that reads at most ``limit`` bytes of fields,
    relays them to ``operation`` and answers ``type_`` with the success fields ``answer`` picks
    from the reply. ``required`` names fields this family requires that the operation's
    request leaves optional (the families share one user record). A ``throttled`` operation
    (a login, a reset) is told the client's address, never one the client sent."""

    async def endpoint(request: Request) -> JSONResponse:
        fields = await fields_of(request, type_, limit)
        for name in required:
            if fields.get(name) is None:
                raise HttpFail(type_, f"{name}: is required", 400, field=name)
        if throttled:
            fields["address"] = client_address(request)
        reply = await call(request, type_, operation, fields)
        return success(type_, **answer(reply))

    # Without a name every relayed route would be called after this closure.
    return Route(path, endpoint, methods=["POST"], name=type_)
