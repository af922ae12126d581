"""The messaging service's tables: one row per ``svc/messaging/*`` operation, and the mirror
and vision topics it listens to."""

from __future__ import annotations

from typing import Any

from broker.client import MessageCallback
from broker.service import Handler
from schemas.messaging import (
    MESSAGING_GET_LAYOUT,
    MESSAGING_LIST,
    MESSAGING_MIRROR,
    MESSAGING_SEND,
    MESSAGING_SET_LAYOUT,
    MIRROR_STATUS,
    MIRROR_WIDGETS,
    SendReply,
    SendRequest,
)
from schemas.topics import Topic
from schemas.vision import VISION_RECOGNIZED
from services.messaging.layouts import Layouts
from services.messaging.messages import Messages
from services.messaging.mirrors import Mirrors
from services.messaging.screens import Screens


def sender(messages: Messages, screens: Screens) -> Handler:
    """``svc/messaging/send`` at QoS 1: the broker keeps sends while the service restarts, and
    a send delivered twice is stored once (``message_id``)."""

    async def send(req: SendRequest) -> SendReply:
        reply, row = await messages.send(req)
        if row is not None:
            screens.on_stored(row)
        return reply

    return Handler(MESSAGING_SEND, send, qos=1)


def handlers(messages: Messages, layouts: Layouts, mirrors: Mirrors,
             screens: Screens) -> list[Handler]:
    return [
        sender(messages, screens),
        Handler(MESSAGING_LIST, messages.list),
        Handler(MESSAGING_SET_LAYOUT, layouts.set),
        Handler(MESSAGING_GET_LAYOUT, layouts.get),
        Handler(MESSAGING_MIRROR, mirrors.state),
    ]


def listeners(mirrors: Mirrors, screens: Screens) -> list[tuple[Topic[Any], MessageCallback]]:
    """Events the service follows (QoS 1, not shared: presence lives in one instance)."""
    return [
        (VISION_RECOGNIZED, screens.on_recognized),
        (MIRROR_STATUS, screens.on_status),
        (MIRROR_WIDGETS, mirrors.on_widgets),
    ]
