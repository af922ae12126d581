"""The messaging service's declaration: one row per ``svc/messaging/*`` operation (its file
store's ``svc/messaging/files/*`` included), the mirror and vision topics it listens to, and what
it tells mirrors."""

from __future__ import annotations

from broker.service import Handler, Listener, Service
from schemas.auth import AUTH_USER_DELETED, AUTH_USER_RENAMED
from schemas.export import MESSAGING_EXPORT
from schemas.files import (
    FILES_ABORT,
    FILES_BEGIN,
    FILES_CHUNK,
    FILES_COMMIT,
    FILES_READ,
    FILES_STAT,
)
from schemas.homeassistant import DEVICE_ADDED, DEVICE_REMOVED, DISCOVERY_CONFIG, MIRROR_PERSON
from schemas.messaging import (
    MESSAGING_GET_LAYOUT,
    MESSAGING_HISTORY,
    MESSAGING_LIST,
    MESSAGING_MIRROR,
    MESSAGING_SEND,
    MESSAGING_SET_LAYOUT,
    MIRROR_DISPLAY,
    MIRROR_STATUS,
    MIRROR_WIDGETS,
    SendReply,
    SendRequest,
)
from schemas.vision import VISION_RECOGNIZED
from services.messaging.exports import export_user
from services.messaging.files import Files
from services.messaging.homeassistant import HomeAssistant
from services.messaging.layouts import Layouts
from services.messaging.messages import Messages
from services.messaging.mirrors import Mirrors
from services.messaging.screens import Screens
from services.tombstones import Tombstones


class Sender:
    """``svc/messaging/send``: store, then show the message wherever its receiver stands."""

    def __init__(self, messages: Messages, screens: Screens) -> None:
        self.messages = messages
        self.screens = screens

    async def send(self, req: SendRequest) -> SendReply:
        reply, row = await self.messages.send(req)
        if row is not None:
            self.screens.on_stored(row)
        return reply


MESSAGING = Service(
    "messaging",
    handlers=(
        # QoS 1: the broker keeps sends while the service restarts, and a send delivered twice
        # is stored once (``message_id``).
        Handler(MESSAGING_SEND, Sender.send, qos=1),
        Handler(MESSAGING_LIST, Messages.list),
        Handler(MESSAGING_HISTORY, Messages.history),
        Handler(MESSAGING_SET_LAYOUT, Layouts.set),
        Handler(MESSAGING_GET_LAYOUT, Layouts.get),
        Handler(MESSAGING_MIRROR, Mirrors.state),
        Handler(MESSAGING_EXPORT, export_user),
        # Files: ``owner`` is taken as given, since only role accounts may publish to svc/#.
        Handler(FILES_BEGIN, Files.begin),
        Handler(FILES_CHUNK, Files.chunk),
        Handler(FILES_COMMIT, Files.commit),
        Handler(FILES_ABORT, Files.abort),
        Handler(FILES_STAT, Files.stat),
        Handler(FILES_READ, Files.read),
    ),
    # QoS 1 and not shared: presence lives in one instance.
    listeners=(
        Listener(VISION_RECOGNIZED, Screens.on_recognized),
        Listener(MIRROR_STATUS, Screens.on_status),
        Listener(MIRROR_WIDGETS, Screens.on_widgets),
        # A deleted account's messages and layouts go, a renamed one's move (every instance).
        Listener(AUTH_USER_DELETED, Tombstones.on_deleted),
        Listener(AUTH_USER_RENAMED, Tombstones.on_renamed),
        # Home Assistant's discovery: the person sensor follows the displays sent; mirrors'
        # accounts made and removed say when entities come and go.
        Listener(MIRROR_DISPLAY, HomeAssistant.on_display),
        Listener(DEVICE_ADDED, HomeAssistant.on_added),
        Listener(DEVICE_REMOVED, HomeAssistant.on_removed),
    ),
    tasks=(Screens.watch_idle, Tombstones.catch_up, Files.sweep_uploads,
           HomeAssistant.announce_known),
    publishes=(MIRROR_DISPLAY, DISCOVERY_CONFIG, MIRROR_PERSON),
)
