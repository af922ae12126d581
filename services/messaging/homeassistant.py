"""Home Assistant's MQTT discovery, kept by the messaging service (schemas/homeassistant.py).

Messaging knows every mirror (its table of mirrors heard of) and what each is told to show (it
hears its own displays, so the person sensor follows exactly what the mirror shows, whatever
sent it there). Device accounts are made and removed by ``mirrorhub device``, which says so on
``events/devices/...``; the service's persistent session keeps those events while it is away.
"""

from __future__ import annotations

import hashlib
import logging
import re

from pydantic import BaseModel, ValidationError

from broker.client import Bus, Message
from schemas.errors import BusUnavailable
from schemas.homeassistant import (
    DISCOVERY_CONFIG,
    MIRROR_PERSON,
    DeviceEvent,
    DiscoveryConfig,
    DiscoveryDevice,
)
from schemas.messaging import MIRROR_DISPLAY, MIRROR_STATUS, MIRROR_WIDGETS
from services.messaging.mirrors import Mirrors
from services.messaging.models import Mirror

log = logging.getLogger(__name__)

NOBODY = "nobody"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")
_ORIGIN = {"name": "mirrorhub"}


class _Shown(BaseModel):
    """What the person sensor reads of a :class:`~schemas.messaging.Display`: who it shows.
    Every message shown sends a display, with up to ``display_messages`` messages, back here;
    reading only this field skips them (a third of the time of a whole ``Display``)."""

    state: str
    user: str | None = None


def node_id(mirror_id: str) -> str:
    """The mirror's id as Home Assistant's discovery topics and unique ids allow it: one that
    had to change gets a hash of the original, so two ids never meet in one node id."""
    safe = _UNSAFE.sub("_", mirror_id)
    if safe != mirror_id:
        safe += "_" + hashlib.sha256(mirror_id.encode()).hexdigest()[:8]
    return f"mirrorhub_{safe}"


class HomeAssistant:
    """Each mirror's discovery configs and person state; ``prefix`` None turns it all off."""

    def __init__(self, bus: Bus, mirrors: Mirrors, prefix: str | None) -> None:
        self.bus = bus
        self.mirrors = mirrors
        self.prefix = prefix
        self._announced: dict[str, str] = {}  # mirror id -> the model code announced
        self._person: dict[str, str] = {}  # mirror id -> the person state last published
        # Removed in this run: a display still going out to one (it goes idle) announces nothing.
        self._removed: set[str] = set()

    def configs(self, mirror_id: str, model: str) -> dict[str, DiscoveryConfig]:
        """The discovery payloads of one mirror, by config topic."""
        assert self.prefix is not None
        node, wire = node_id(mirror_id), self.bus.namespace  # HA reads the topics raw
        status = wire + MIRROR_STATUS.format(mirror_id=mirror_id)
        device = DiscoveryDevice(identifiers=[node], name=f"Mirror {mirror_id}", model=model)
        person = DiscoveryConfig(
            name="Person at the mirror", unique_id=f"{node}_person",
            state_topic=wire + MIRROR_PERSON.format(mirror_id=mirror_id),
            availability_topic=status, payload_available="online",
            payload_not_available="offline", icon="mdi:account", device=device, origin=_ORIGIN)
        online = DiscoveryConfig(
            name="Connectivity", unique_id=f"{node}_connectivity", state_topic=status,
            device_class="connectivity", payload_on="online", payload_off="offline",
            device=device, origin=_ORIGIN)
        topic = DISCOVERY_CONFIG.format
        return {topic(prefix=self.prefix, component="sensor", node_id=node,
                      object_id="person"): person,
                topic(prefix=self.prefix, component="binary_sensor", node_id=node,
                      object_id="connectivity"): online}

    async def _announce(self, mirror_id: str) -> None:
        model = await self.mirrors.model_code(mirror_id) or "smart mirror"
        for topic, config in self.configs(mirror_id, model).items():
            await self.bus.publish_raw(topic, config.model_dump_json(exclude_none=True),
                                       qos=1, retain=True)
        self._announced[mirror_id] = model

    async def _person_is(self, mirror_id: str, person: str) -> None:
        if self._person.get(mirror_id) != person:
            await self.bus.publish(MIRROR_PERSON, person, qos=1, retain=True,
                                   mirror_id=mirror_id)
            self._person[mirror_id] = person

    async def announce_known(self) -> None:
        """At start-up: the configs of every mirror heard of, before anybody is recognised."""
        if self.prefix is None:
            return
        for mirror_id in await Mirror.all().values_list("mirror_id", flat=True):
            try:
                await self._announce(str(mirror_id))
            except BusUnavailable:
                log.warning("Home Assistant: mirror %s not announced, broker unreachable",
                            mirror_id)

    async def on_display(self, message: Message) -> None:
        """A display went out: the person sensor says who it shows (a mirror not announced
        yet, or whose model changed, is announced first)."""
        if self.prefix is None or not message.payload:
            return
        try:
            display = _Shown.model_validate_json(message.payload)
        except ValidationError:
            return  # not ours to judge: the mirror logs a bad display
        mirror_id = message.params["mirror_id"]
        if mirror_id in self._removed:
            return
        if self._announced.get(mirror_id) != (await self.mirrors.model_code(mirror_id)
                                              or "smart mirror"):
            await self._announce(mirror_id)
        await self._person_is(mirror_id, display.user or NOBODY)

    async def on_added(self, message: Message) -> None:
        """A mirror's account was made: its entities exist from now, reading ``nobody``."""
        event = DeviceEvent.model_validate_json(message.payload)
        self._removed.discard(event.mirror_id)
        await Mirror.get_or_create(mirror_id=event.mirror_id)
        if self.prefix is not None:
            await self._announce(event.mirror_id)
            if event.mirror_id not in self._person:
                await self._person_is(event.mirror_id, NOBODY)

    async def on_removed(self, message: Message) -> None:
        """A mirror's account was removed: its entities go (empty retained configs), and so do
        its retained topics and its row, so that nothing brings it back at the next start."""
        event = DeviceEvent.model_validate_json(message.payload)
        mirror_id = event.mirror_id
        self._removed.add(mirror_id)
        if self.prefix is not None:
            for topic in self.configs(mirror_id, ""):
                await self.bus.publish_raw(topic, b"", qos=1, retain=True)
        for retained in (MIRROR_PERSON, MIRROR_STATUS, MIRROR_WIDGETS, MIRROR_DISPLAY):
            await self.bus.publish(retained, b"", qos=1, retain=True, mirror_id=mirror_id)
        await Mirror.filter(mirror_id=mirror_id).delete()
        self.mirrors.forget(mirror_id)
        self._announced.pop(mirror_id, None)
        self._person.pop(mirror_id, None)
        log.info("mirror %s forgotten: its account was removed", mirror_id)
