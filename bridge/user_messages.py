"""Routes of the user/file API (seed 003) for messages: ``POST /api/message`` sends one from the
token's user, ``GET /api/message`` lists what they sent and received.

These are the messages of seed 000's ``/send_message`` (one table, ``svc/messaging/send``): one
sent here to somebody standing at a mirror shows there, with its attachment's name. A message
may name one of the sender's files (``file_type`` and ``file_name``); without ``receiver`` it is a
note to the sender. docs/http-api.md has the choices the seed leaves open.
"""

from __future__ import annotations

import uuid
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.replies import HttpFail, call, message_id_problem
from bridge.user_family import answer, ask, fail, fields, token_user
from schemas.files import FileRef
from schemas.messaging import MESSAGING_HISTORY, MESSAGING_SEND, MessageOut, MessagingError

NOT_SENT = "cant send message"
# The send request's field names, as this family's clients know them.
_FIELDS = {"content": "text", "receiver_username": "receiver"}
_DOMAIN: dict[str, tuple[int, str]] = {
    MessagingError.FILE_NOT_FOUND: (404, "your file or format not found"),
    MessagingError.RECEIVER_NOT_FOUND: (404, "receiver not found"),
    MessagingError.DUPLICATE_ID: (422, "this message_id was already used for another message"),
}


def _attachment(given: dict[str, Any]) -> dict[str, Any] | None:
    """The file the message names, if any; 404 ``invalid type of name`` when only one of
    ``file_type`` and ``file_name`` is given, or either is malformed."""
    type_, name = given.get("file_type"), given.get("file_name")
    if type_ in (None, "") and name in (None, ""):
        return None
    try:
        return FileRef.model_validate({"type": type_, "name": name}).model_dump()
    except ValidationError as exc:
        raise fail(404, "invalid type of name") from exc


async def send_message(request: Request) -> JSONResponse:
    """Store ``text`` from the token's user for ``receiver`` (themself without one), naming
    the attached file if any. Idempotent with an ``Idempotency-Key`` header or ``message_id``
    field, as ``/send_message`` is."""
    user = await token_user(request)
    given = await fields(request)
    attachment = _attachment(given)
    problem = message_id_problem(given)
    if problem is not None:
        raise fail(400, problem.message, problem.code)
    receiver = given.get("receiver")
    key = request.headers.get("idempotency-key", "").strip() or given.get("message_id")
    body = {"sender_username": user.username,
            "receiver_username": user.username if receiver in (None, "") else receiver,
            "content": given.get("text"), "message_id": key or uuid.uuid4().hex,
            "attachment": attachment}
    try:
        await call(request, "user_api", MESSAGING_SEND, body, qos=1, timeout_status=503)
    except HttpFail as exc:
        if exc.code in _DOMAIN:
            status, message = _DOMAIN[exc.code]
            raise fail(status, message, exc.code) from exc
        if exc.status == 400:  # a field the family names otherwise
            field = exc.extra.get("field")
            message = exc.message
            if field in _FIELDS and message.startswith(f"{field}"):
                message = _FIELDS[field] + message[len(field):]
            raise fail(400, message, exc.code) from exc
        # The service failed, is away or did not answer in time (the deadline dropped the
        # request unstored), or the sender's account is gone: nothing was stored.
        raise fail(404, NOT_SENT, exc.code) from exc
    return answer(200, "message sent successfully")


def _item(message: MessageOut) -> dict[str, Any]:
    attached = message.attachment
    return {"id": message.id, "sender": message.sender, "receiver": message.receiver,
            "text": message.content, "file_type": attached.type if attached else None,
            "file_name": attached.name if attached else None,
            "timestamp": message.timestamp, "read": message.read}


async def list_messages(request: Request) -> JSONResponse:
    """What the token's user sent and received, newest first, ``limit`` (1 to 200, default 50)
    together; ``before`` (the ``next_before`` of the previous page) pages back."""
    user = await token_user(request)
    given = await fields(request)
    body = {"username": user.username, "limit": given.get("limit", 50),
            "before": given.get("before")}
    reply = await ask(request, MESSAGING_HISTORY, body)
    me = user.username
    return answer(200, {
        "sent": [_item(m) for m in reply.messages if m.sender == me],
        "received": [_item(m) for m in reply.messages if m.receiver == me],
        "next_before": reply.next_before,
    })


routes = [
    # One path, two routes: Starlette takes the one whose method matches.
    Route("/api/message", send_message, methods=["POST"], name="api_message_send"),
    Route("/api/message", list_messages, methods=["GET"], name="api_message_list"),
]
