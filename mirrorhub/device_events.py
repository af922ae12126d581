"""``mirrorhub device add|remove`` tell the services, over MQTT, that a mirror's own account was
made or removed (``events/devices/...``, schemas/homeassistant.py): the messaging service then
gives the mirror its Home Assistant entities, or removes them and forgets the mirror.

The account file changes whether or not a broker is reachable: an account must be removable
while everything is down. The event is then not sent and the command says so; running it again
once the broker is up sends it (``remove`` sends it even when the account is gone already).
The messaging service's persistent session keeps the event while that service is down.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace
from typing import Any

from broker.client import Bus
from broker.settings import BusSettings
from schemas.errors import BusError
from schemas.homeassistant import DeviceEvent
from schemas.topics import Topic

_CONNECT_TIMEOUT = 2.0


def _reachable(settings: BusSettings) -> bool:
    try:
        with socket.create_connection((settings.url.host, settings.url.port),
                                      timeout=_CONNECT_TIMEOUT):
            return True
    except OSError:
        return False


async def publish_event(settings: BusSettings, topic: Topic[Any], mirror_id: str) -> str | None:
    """Publish the device event; None when the broker has it, else why not (for a warning)."""
    if not await asyncio.to_thread(_reachable, settings):
        return f"no MQTT broker at {settings.url}"
    try:
        async with Bus(replace(settings, connect_timeout=_CONNECT_TIMEOUT),
                       role="device-admin") as bus:
            await bus.publish(topic, DeviceEvent(mirror_id=mirror_id), qos=1)
    except BusError as exc:
        return str(exc)
    return None


def tell(settings: BusSettings, topic: Topic[Any], mirror_id: str) -> str | None:
    """:func:`publish_event`, for a command that runs no event loop."""
    return asyncio.run(publish_event(settings, topic, mirror_id))
