"""Running the messaging service: its database, its handler table and the mirror experience."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from broker.metrics import MIRRORS_ONLINE
from broker.service import service_bus
from broker.settings import BusSettings
from services.database import open_database, server_away
from services.messaging.blobs import Blobs
from services.messaging.config import MessagingSettings
from services.messaging.files import Files
from services.messaging.handlers import MESSAGING, Sender
from services.messaging.homeassistant import HomeAssistant
from services.messaging.layouts import Layouts
from services.messaging.messages import Messages
from services.messaging.mirrors import Mirrors
from services.messaging.models import DeletionCursor
from services.messaging.presence import Presence
from services.messaging.screens import Screens
from services.messaging.users import Users
from services.tombstones import ByName, Cursor, Forgetter, Tombstones


@dataclass(frozen=True)
class Messaging:
    """The running service's parts, for tests and benchmarks to look at."""

    messages: Messages
    layouts: Layouts
    mirrors: Mirrors
    screens: Screens
    tombstones: Tombstones
    files: Files


@contextlib.asynccontextmanager
async def run_messaging(
    bus_settings: BusSettings, settings: MessagingSettings
) -> AsyncIterator[Messaging]:
    """Serve ``svc/messaging/*`` and drive the mirrors' displays until the context exits.

    The MQTT session is persistent (client id ``messaging-{instance}``), so sends published
    while the service is away wait at the broker until it is back or their deadline passes.
    """
    bus = service_bus(bus_settings, "messaging", instance=settings.instance)
    users = Users(bus)
    files = Files(Blobs(settings.files_dir), max_upload=settings.max_upload,
                  quota=settings.quota, upload_idle=settings.upload_idle)
    messages, layouts, mirrors = Messages(users, files), Layouts(users), Mirrors()
    screens = Screens(bus, Presence(settings.hold, settings.idle_after), mirrors, layouts,
                      messages, users, settings.display_messages)
    # What a deleted account leaves here, in this order: its name stops passing for an account
    # at once, its stored data goes (messages, layouts, uploaded files), and mirrors showing it
    # go idle last (so no display of it can go out after).
    forgetters: tuple[Forgetter, ...] = (users, messages, layouts, files, screens)
    tombstones = Tombstones(bus, ByName(forgetters), Cursor(DeletionCursor))
    async with open_database(settings.database_url, "messaging", "services.messaging.models",
                             "services.messaging.migrations"):
        await files.open()  # before any request can reach the store
        with MIRRORS_ONLINE.sampling(lambda: len(mirrors.online), bus.client_id):
            async with MESSAGING.serve(bus, Sender(messages, screens), messages, layouts,
                                       mirrors, screens, files, tombstones,
                                       HomeAssistant(bus, mirrors, settings.ha_prefix),
                                       unavailable=server_away):
                yield Messaging(messages, layouts, mirrors, screens, tombstones, files)
