"""The mirror experience: who stands at a mirror sees their layout and their messages.

Vision's ``events/vision/recognized`` feeds :class:`~services.messaging.presence.Presence`;
whenever the person a mirror should show changes, or goes, the mirror gets a retained QoS 1
:class:`~schemas.messaging.Display` on ``mirrors/{mirror_id}/display``. A message for somebody
standing at a mirror is pushed to that mirror the moment it is stored. Messages are marked read
once a display holding them has reached the broker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime

from pydantic import ValidationError

from broker.client import Bus, Message
from schemas.errors import BusUnavailable
from schemas.messaging import MIRROR_DISPLAY, Display, DisplayMessage
from schemas.vision import Recognized
from services.messaging.layouts import Layouts
from services.messaging.messages import Messages, shown
from services.messaging.mirrors import Mirrors
from services.messaging.models import Message as MessageRow
from services.messaging.presence import Presence

log = logging.getLogger(__name__)

_TICK = 0.25  # longest sleep of the idle watch; idling is due within this of its time


class Screens:
    def __init__(
        self,
        bus: Bus,
        presence: Presence,
        mirrors: Mirrors,
        layouts: Layouts,
        messages: Messages,
        max_messages: int,
    ) -> None:
        self.bus = bus
        self.presence = presence
        self.mirrors = mirrors
        self.layouts = layouts
        self.messages = messages
        self.max_messages = max_messages
        self._shown: dict[str, list[DisplayMessage]] = {}  # per mirror, this visit's messages
        self._locks: dict[str, asyncio.Lock] = {}
        # Per mirror, messages stored but not yet on its display.
        self._fresh: dict[str, list[DisplayMessage]] = {}
        self._flushing: dict[str, asyncio.Task[None]] = {}

    async def on_recognized(self, message: Message) -> None:
        try:
            event = Recognized.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("ignored a recognized event: %s", exc.errors()[0]["msg"])
            return
        user = self.presence.seen(event.mirror_id, event.names, time.monotonic())
        if user is not None:
            await self.show(event.mirror_id, user)

    async def on_status(self, message: Message) -> None:
        said = await self.mirrors.on_status(message)
        if said is not None and said[1] == "online" and self.presence.user_at(said[0]) is None:
            await self.show(said[0], None)  # a mirror that just woke up: idle

    def on_stored(self, row: MessageRow) -> None:
        """A new message: every mirror showing its receiver shows it too, at once.

        The display goes out from a task of its own, so the sender's reply does not wait for it;
        messages that arrive while a mirror's display is being sent go out together in the next
        one, so a burst costs a few displays rather than one each.
        """
        for mirror_id in self.presence.mirrors_of(row.receiver):
            self._fresh.setdefault(mirror_id, []).append(shown(row))
            if mirror_id not in self._flushing:
                task = asyncio.create_task(self._flush(mirror_id, row.receiver))
                self._flushing[mirror_id] = task

    async def _flush(self, mirror_id: str, user: str) -> None:
        try:
            while self._fresh.get(mirror_id):
                async with self._lock(mirror_id):
                    fresh = self._fresh.pop(mirror_id, [])
                    if self.presence.user_at(mirror_id) != user or not fresh:
                        return  # they left: the idle display has replaced theirs
                    visit = self._shown.setdefault(mirror_id, [])
                    seen = {m.id for m in visit}  # a new visit may have read them already
                    visit.extend(m for m in fresh if m.id not in seen)
                    visit.sort(key=lambda m: m.id, reverse=True)
                    del visit[self.max_messages:]
                    # A burst beyond the display's room shows its newest; the rest stay unread.
                    on_display = {m.id for m in visit}
                    await self._publish(mirror_id, user, visit,
                                        [m.id for m in fresh if m.id in on_display])
        except Exception:
            log.exception("could not show new messages on %s", mirror_id)
        finally:
            del self._flushing[mirror_id]

    async def show(self, mirror_id: str, user: str | None) -> None:
        """Tell a mirror to show ``user`` (their layout and unread messages), or idle."""
        async with self._lock(mirror_id):
            if user is None:
                self._shown.pop(mirror_id, None)
                await self._publish(mirror_id, None, [], [])
                return
            unread = await self.messages.unread(user, self.max_messages)
            visit = [shown(row) for row in unread]
            self._shown[mirror_id] = visit
            await self._publish(mirror_id, user, visit, [m.id for m in visit])

    def _lock(self, mirror_id: str) -> asyncio.Lock:
        return self._locks.setdefault(mirror_id, asyncio.Lock())

    async def _publish(self, mirror_id: str, user: str | None,
                       messages: list[DisplayMessage], fresh: list[int]) -> None:
        """Send the display; once the broker has it, the ``fresh`` messages (not shown on this
        visit before) are read."""
        model_code = await self.mirrors.model_code(mirror_id)
        display = Display(
            mirror_id=mirror_id,
            state="present" if user else "idle",
            user=user,
            layout=await self.layouts.for_display(model_code, user),
            messages=list(messages),
            at=datetime.now(UTC),
        )
        self.mirrors.displays[mirror_id] = display
        try:
            await self.bus.publish(MIRROR_DISPLAY, display, qos=1, retain=True, wait=2.0,
                                   mirror_id=mirror_id)
        except BusUnavailable:
            log.warning("display for %s not sent: broker unreachable", mirror_id)
            return  # not shown, so not read
        await self.messages.mark_read(fresh)

    async def watch_idle(self) -> None:
        """Send mirrors back to idle when nobody has been seen for a while, until cancelled;
        the displays of new messages still on their way go with it (they are its tasks)."""
        try:
            while True:
                due = self.presence.next_expiry()
                now = time.monotonic()
                await asyncio.sleep(_TICK if due is None else min(_TICK, max(due - now, 0.01)))
                for mirror_id in self.presence.expired(time.monotonic()):
                    try:
                        await self.show(mirror_id, None)
                    except Exception:
                        log.exception("could not send %s back to idle", mirror_id)
        finally:
            flushing = list(self._flushing.values())
            for task in flushing:
                task.cancel()
            await asyncio.gather(*flushing, return_exceptions=True)
