"""What the bridge hears of the fleet, for the admin page: each mirror's status, model code,
who stands at it and when it was last heard of; each service's health; new recognitions.

The bridge subscribes to the retained ``mirrors/+/status``, ``mirrors/+/widgets`` and
``mirrors/+/display`` and ``events/+/status`` when it starts, so a freshly started bridge knows
every mirror's and service's latest word at once, and to ``events/vision/recognition`` for
recognitions as they are kept. Nothing is stored: a restarted bridge learns it all again from
the retained messages. Each change goes to every open admin page (:meth:`FleetView.listen`)
through a small queue per page; a page that does not keep up loses its queue and is told to
reload instead of holding memory.

*Last seen* is the latest of: when the bridge heard the mirror's status or widgets live (not a
retained copy), the time of the display messaging last sent it, and its latest recognition.
A retained status alone says nothing of when it was sent, so a mirror heard of only that way
shows no time until it is heard from again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from pydantic import ValidationError

from broker.client import Bus, Message
from schemas.messaging import MIRROR_DISPLAY, MIRROR_STATUS, MIRROR_WIDGETS, Display, MirrorWidgets
from schemas.recognitions import VISION_RECOGNITION, Recognition
from schemas.service import SERVICE_STATUS, ServiceStatus

log = logging.getLogger(__name__)

SERVICES = ("auth", "vision", "messaging")  # shown even before they have said anything
QUEUE_MAX = 256  # changes waiting for one page before it is told to reload


@dataclass
class MirrorSeen:
    mirror_id: str
    status: str | None = None  # "online", "offline", or None when it never said
    model_code: str | None = None
    user: str | None = None  # who stands there now, None for nobody
    last_seen: datetime | None = None

    def seen_at(self, when: datetime | None) -> None:
        if when is not None and (self.last_seen is None or when > self.last_seen):
            self.last_seen = when


@dataclass
class ServiceSeen:
    service: str
    instances: dict[str, str] = field(default_factory=dict)  # client id -> online/offline
    changed_at: datetime | None = None  # when the bridge last heard it (None: never)

    @property
    def state(self) -> str:
        """``online`` while any instance is, ``offline`` once all said so, else ``unknown``."""
        if any(state == "online" for state in self.instances.values()):
            return "online"
        return "offline" if self.instances else "unknown"

    @property
    def online(self) -> int:
        return sum(state == "online" for state in self.instances.values())


Change = MirrorSeen | ServiceSeen | Recognition | None
"""What one page is told: a mirror's or service's new state, a new recognition, or None when
it is to reload (it fell behind) or the bridge stops."""


class FleetView:
    def __init__(self) -> None:
        self.mirrors: dict[str, MirrorSeen] = {}
        self.services: dict[str, ServiceSeen] = {name: ServiceSeen(name) for name in SERVICES}
        self._pages: set[asyncio.Queue[Change]] = set()
        self.stopping = False

    async def follow(self, bus: Bus) -> None:
        """Subscribe to what the view shows (module docstring); the Bus keeps the
        subscriptions across reconnects."""
        await bus.subscribe(MIRROR_STATUS, self._on_status, qos=1)
        await bus.subscribe(MIRROR_WIDGETS, self._on_widgets, qos=1)
        await bus.subscribe(MIRROR_DISPLAY, self._on_display, qos=1)
        await bus.subscribe(SERVICE_STATUS, self._on_service, qos=1)
        await bus.subscribe(VISION_RECOGNITION, self._on_recognition, qos=0)

    @contextlib.contextmanager
    def listen(self) -> Iterator[asyncio.Queue[Change]]:
        """A queue of the changes from now on, for one open page, until the context exits."""
        queue: asyncio.Queue[Change] = asyncio.Queue(QUEUE_MAX)
        if self.stopping:
            queue.put_nowait(None)
        self._pages.add(queue)
        try:
            yield queue
        finally:
            self._pages.discard(queue)

    @property
    def pages(self) -> int:
        """How many pages listen now (tests see a closed stream let go of its queue)."""
        return len(self._pages)

    def stop(self) -> None:
        """The bridge stops: every open stream ends."""
        self.stopping = True
        for queue in list(self._pages):
            self._tell(queue, None)

    def _changed(self, change: Change) -> None:
        for queue in list(self._pages):
            self._tell(queue, change)

    def _tell(self, queue: asyncio.Queue[Change], change: Change) -> None:
        try:
            queue.put_nowait(change)
        except asyncio.QueueFull:  # the page fell behind: it reloads instead
            self._pages.discard(queue)
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(None)

    def _mirror(self, message: Message) -> MirrorSeen:
        mirror_id = message.params["mirror_id"]
        seen = self.mirrors.get(mirror_id)
        if seen is None:
            seen = self.mirrors[mirror_id] = MirrorSeen(mirror_id)
        if not message.retain:
            seen.seen_at(datetime.now(UTC))
        return seen

    async def _on_status(self, message: Message) -> None:
        status = message.payload.decode("utf-8", "replace").strip().lower()
        if status not in ("online", "offline"):
            return  # an empty retained payload clears the topic; anything else is noise
        seen = self._mirror(message)
        seen.status = status
        self._changed(seen)

    async def _on_widgets(self, message: Message) -> None:
        try:
            widgets = MirrorWidgets.model_validate_json(message.payload)
        except ValidationError:
            return
        seen = self._mirror(message)
        seen.model_code = widgets.model_code
        self._changed(seen)

    async def _on_display(self, message: Message) -> None:
        try:
            display = Display.model_validate_json(message.payload)
        except ValidationError:
            return
        seen = self._mirror(message)
        seen.user = display.user if display.state == "present" else None
        seen.seen_at(display.at)
        self._changed(seen)

    async def _on_service(self, message: Message) -> None:
        try:
            status = ServiceStatus.model_validate_json(message.payload)
        except ValidationError:
            return
        name = message.params["service"]
        seen = self.services.setdefault(name, ServiceSeen(name))
        seen.instances[status.client_id] = status.state
        if status.state == "offline":  # a gone instance's id is not kept for ever
            seen.instances = {cid: state for cid, state in seen.instances.items()
                              if state == "online" or cid == status.client_id}
        seen.changed_at = datetime.now(UTC)
        self._changed(seen)

    async def _on_recognition(self, message: Message) -> None:
        try:
            recognition = Recognition.model_validate_json(message.payload)
        except ValidationError:
            log.warning("ignored a recognition that is not one on %s", message.topic)
            return
        seen = self.mirrors.get(recognition.mirror_id)
        if seen is not None:
            seen.seen_at(recognition.at)
            self._changed(seen)
        self._changed(recognition)
