"""Routes of the smart-mirror API (seed 000) for messages and widget layouts.

Each route reads the documented fields (form, JSON or query), relays them to the messaging
service over MQTT and answers the documented shape; paths, field names and reply ``type`` values
are the contract. docs/http-api.md describes the additions (paging, idempotency, scopes).
"""

from __future__ import annotations

import json
import uuid

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.replies import HttpFail, acting_user, call, fields_of, message_id_problem, success
from schemas.messaging import (
    MESSAGING_GET_LAYOUT,
    MESSAGING_LIST,
    MESSAGING_SEND,
    MESSAGING_SET_LAYOUT,
    MessagingError,
)

MESSAGING_BODY_LIMIT = 64 * 1024

NOT_SENT = (
    "the messaging service is unavailable: the message was NOT sent; it is safe to send it "
    "again (with the same Idempotency-Key it is stored at most once)"
)


async def send_message(request: Request) -> JSONResponse:
    """Store a message for ``receiver_username``.

    The request's ``message_id`` is the ``Idempotency-Key`` header, else a ``message_id`` field,
    else a fresh one: a retry with the same key stores nothing new and gets the same success;
    the same key with a different message is a 422 (as the IETF Idempotency-Key draft says).
    It travels at QoS 1 to the service's persistent session and carries a deadline past which
    the service drops it unstored, so a timeout means "not sent" (503), not "maybe" (504).
    """
    fields = await fields_of(request, "message_sent", MESSAGING_BODY_LIMIT)
    fields.pop("attachment", None)  # seed 003's (bridge/user_messages.py), with a token
    await acting_user(request, "message_sent", fields.get("sender_username"), "sender_username")
    problem = message_id_problem(fields)
    if problem is not None:
        raise HttpFail("message_sent", problem.message, 400, problem.code, field=problem.field)
    key = request.headers.get("idempotency-key", "").strip()
    if key:
        fields["message_id"] = key
    elif fields.get("message_id") is None:
        fields["message_id"] = uuid.uuid4().hex
    reply = await call(request, "message_sent", MESSAGING_SEND, fields, qos=1,
                       domain_status={MessagingError.DUPLICATE_ID: 422},
                       timeout_status=503, timeout_message=NOT_SENT)
    return success("message_sent", message="Message sent", message_id=reply.message_id,
                   timestamp=reply.timestamp)


async def get_messages(request: Request) -> JSONResponse:
    """The receiver's messages, newest first; query ``limit`` (1 to 200, default 50) and
    ``before`` (the ``next_before`` of the previous page) page back through older ones."""
    fields = await fields_of(request, "messages_retrieved", MESSAGING_BODY_LIMIT)
    fields["receiver_username"] = request.path_params["receiver_username"]
    await acting_user(request, "messages_retrieved", fields["receiver_username"],
                      "receiver_username")
    reply = await call(request, "messages_retrieved", MESSAGING_LIST, fields)
    messages = [
        {"sender": m.sender, "content": m.content, "timestamp": m.timestamp, "id": m.id,
         "read": m.read}
        for m in reply.messages
    ]
    return success("messages_retrieved", messages=messages, next_before=reply.next_before)


async def set_widgets(request: Request) -> JSONResponse:
    """Store ``index`` as the layout of ``model_code``, or with ``username`` as that user's own
    layout on mirrors of that model. A malformed layout is a 400 naming ``index``."""
    fields = await fields_of(request, "widget_custom", MESSAGING_BODY_LIMIT)
    if fields.get("username") is not None:  # a user's own layout; the model's is anybody's
        await acting_user(request, "widget_custom", fields["username"], "username")
    reply = await call(request, "widget_custom", MESSAGING_SET_LAYOUT, fields)
    return success("widget_custom", message="New Widget" if reply.created else "Update Widget")


async def get_widgets(request: Request) -> JSONResponse:
    """The layout for ``model_code`` (and ``username``): ``message`` is it as JSON text, as the
    seed documents; ``index`` the same as an object and ``scope`` whose layout it is."""
    fields = await fields_of(request, "get_widget_custom", MESSAGING_BODY_LIMIT)
    reply = await call(request, "get_widget_custom", MESSAGING_GET_LAYOUT, fields)
    index = {name: list(cell) for name, cell in reply.index.items()}
    return success("get_widget_custom", message=json.dumps(index, ensure_ascii=False),
                   index=index, scope=reply.scope)


routes = [
    Route("/send_message", send_message, methods=["POST"]),
    Route("/get_messages/{receiver_username}", get_messages, methods=["GET"]),
    Route("/widgets_custom", set_widgets, methods=["POST"]),
    Route("/get_widgets_custom", get_widgets, methods=["GET"]),
]
