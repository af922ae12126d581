"""Declarations of the smart-mirror API's messages and widget layouts (seed 000,
:mod:`bridge.messaging_api`) for ``/openapi.json``, in seed 000's shapes
(:func:`bridge.mirror_spec.seed_000`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bridge.mirror_spec import Fail000, seed_000
from bridge.spec import (
    REPLY,
    Auth,
    Endpoint,
    Family,
    Fields,
    Idempotent,
    Name,
    Reply,
    merged,
)
from schemas.messaging import CONTENT_MAX, MESSAGE_ID_MAX, Layout, ModelCode

TAG = "messaging"


class _Ok(BaseModel):
    model_config = REPLY
    result: Literal["success"]


class SendFields(Fields):
    sender_username: Name
    receiver_username: Name
    content: str = Field(min_length=1, max_length=CONTENT_MAX)
    message_id: str | None = Field(default=None, min_length=1, max_length=64)


class SentOk(_Ok):
    type: Literal["message_sent"]
    message: Literal["Message sent"]
    message_id: str
    timestamp: str


class PageQuery(BaseModel):
    """A page of messages, newest first (seed 003's history pages the same way)."""

    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(default=None, ge=1, le=MESSAGE_ID_MAX)


class MessageShown(BaseModel):
    model_config = REPLY
    sender: str
    content: str
    timestamp: str
    id: int
    read: bool


class MessagesOk(_Ok):
    type: Literal["messages_retrieved"]
    messages: list[MessageShown]
    next_before: int | None


class LayoutFields(Fields):
    model_code: ModelCode
    index: Layout | str
    username: Name | None = None


class LayoutSet(_Ok):
    type: Literal["widget_custom"]
    message: Literal["New Widget", "Update Widget"]


class LayoutQuery(BaseModel):
    model_code: ModelCode
    username: Name | None = None


class LayoutOk(_Ok):
    type: Literal["get_widget_custom"]
    message: str
    index: dict[str, tuple[int, int]]
    scope: Literal["user", "model"]


def _ok(ok: type[BaseModel], fail: type[BaseModel]) -> Reply:
    return Reply("Success, or a documented failure (`result` says which).", (ok, fail))


def _tokens(fail: type[BaseModel]) -> dict[int, Reply]:
    return {401: Reply("A bearer token that does not verify, or none where the bridge requires "
                       "one (MIRRORHUB_REQUIRE_TOKEN=1).", (fail,)),
            403: Reply("The token is another user's than the one the request acts for.",
                       (fail,))}


_sent_fail, _sent = seed_000("message_sent")
_messages_fail, _messages = seed_000("messages_retrieved")
_set_fail, _set = seed_000("widget_custom")
_get_fail, _get = seed_000("get_widget_custom")

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/send_message", TAG, "Send a message (idempotent with a key)",
             merged(_sent, _tokens(_sent_fail), {
                 200: _ok(SentOk, _sent_fail),
                 422: Reply("The key was used for another message.", (_sent_fail,)),
                 503: Reply("Not sent (the service is away or did not answer in time): "
                            "sending again is safe.", (_sent_fail,))}),
             body=SendFields, headers=Idempotent, auth=Auth.USER, auth_optional=True),
    Endpoint("GET", "/get_messages/{receiver_username}", TAG, "A user's messages, newest first",
             merged(_messages, _tokens(_messages_fail), {200: _ok(MessagesOk, _messages_fail)}),
             query=PageQuery, auth=Auth.USER, auth_optional=True),
    Endpoint("POST", "/widgets_custom", TAG, "Store a model's (or a user's) widget layout",
             merged(_set, _tokens(_set_fail), {200: _ok(LayoutSet, _set_fail)}),
             body=LayoutFields, auth=Auth.USER, auth_optional=True),
    Endpoint("GET", "/get_widgets_custom", TAG, "The layout for a model (and user)",
             merged(_get, {200: _ok(LayoutOk, _get_fail)}), query=LayoutQuery),
)

FAMILY = Family(TAG, "Seed 000: messages and widget layouts.", ENDPOINTS, (Fail000,))
