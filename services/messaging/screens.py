"""The mirror experience: who stands at a mirror sees their layout and their messages.

Vision's ``events/vision/recognized`` feeds :class:`~services.messaging.presence.Presence`;
whenever the person a mirror should show changes, or goes, the mirror gets a retained QoS 1
:class:`~schemas.messaging.Display` on ``mirrors/{mirror_id}/display``. A message for somebody
standing at a mirror is pushed to that mirror the moment it is stored. Messages are marked read
once a display holding them has reached the broker.

Messages are private: a display holds them only while the presence is *unlocked*, i.e. vision
counted the face among the event's ``trusted`` names (enrolled with the user's token; liveness
will be the second condition, decided by vision too). Anybody else recognised is greeted by name
with their layout, no messages, and nothing is marked read (``Display.unlocked`` is false).
A name whose account was deleted (or renamed away) is shown nowhere, even when a vision worker
that has not yet heard of it still names the face (:meth:`Users.gone`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
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
from services.messaging.users import Users

log = logging.getLogger(__name__)

_TICK = 0.25  # longest sleep of the idle watch; idling is due within this of its time


@dataclass
class _Visit:
    """One person's time at one mirror: the messages shown to them so far (read already), so a
    display sent again in the same visit (locked, then unlocked) still holds them."""

    user: str
    messages: list[DisplayMessage] = field(default_factory=list)


def _lock_of(locks: dict[str, asyncio.Lock], mirror_id: str) -> asyncio.Lock:
    lock = locks.get(mirror_id)
    if lock is None:
        lock = locks[mirror_id] = asyncio.Lock()
    return lock


class Screens:
    def __init__(
        self,
        bus: Bus,
        presence: Presence,
        mirrors: Mirrors,
        layouts: Layouts,
        messages: Messages,
        users: Users,
        max_messages: int,
    ) -> None:
        self.bus = bus
        self.users = users
        self.presence = presence
        self.mirrors = mirrors
        self.layouts = layouts
        self.messages = messages
        self.max_messages = max_messages
        self._visits: dict[str, _Visit] = {}  # per mirror, who stands there now
        self._locks: dict[str, asyncio.Lock] = {}
        # Per mirror, its own messages (status, widgets) handled one at a time in the order
        # they arrived: a mirror says its widgets, then that it is online.
        self._heard: dict[str, asyncio.Lock] = {}
        # Per mirror, messages stored but not yet on its display.
        self._fresh: dict[str, list[DisplayMessage]] = {}
        self._flushing: dict[str, asyncio.Task[None]] = {}

    async def on_recognized(self, message: Message) -> None:
        try:
            event = Recognized.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("ignored a recognized event: %s", exc.errors()[0]["msg"])
            return
        names = event.names
        gone = await self.users.gone(names)
        if gone:  # a vision worker that has not yet heard of the deletion, or a frame before
            names = [name for name in names if name not in gone]
        user = self.presence.seen(event.mirror_id, names, time.monotonic(),
                                  set(event.trusted) - gone)
        if user is not None:
            await self.show(event.mirror_id, user)

    async def on_status(self, message: Message) -> None:
        async with self._in_order(message):
            said = await self.mirrors.on_status(message)
            if (said is not None and said[1] == "online"
                    and self.presence.user_at(said[0]) is None):
                await self.show(said[0], None)  # a mirror that just woke up: idle

    async def on_widgets(self, message: Message) -> None:
        """A mirror's widget state. A new model code brings its model's layout, so an idle
        mirror already told what to show is told again: a mirror coming online retains both
        its status and its widgets, and the broker may deliver the two in either order."""
        async with self._in_order(message):
            changed = await self.mirrors.on_widgets(message)
            if (changed is not None and changed in self.mirrors.displays
                    and self.presence.user_at(changed) is None):
                await self.show(changed, None)

    def _in_order(self, message: Message) -> asyncio.Lock:
        """The lock that keeps one mirror's own messages in arrival order: each is handled in
        a task of its own, started as it arrives, and the lock queues them first come first
        served, so a mirror's first idle display has the layout of the model it just named."""
        return _lock_of(self._heard, message.params["mirror_id"])

    def on_stored(self, row: MessageRow) -> None:
        """A new message: every mirror showing its receiver, unlocked, shows it too, at once.

        The display goes out from a task of its own, so the sender's reply does not wait for it;
        messages that arrive while a mirror's display is being sent go out together in the next
        one, so a burst costs a few displays rather than one each.
        """
        for mirror_id in self.presence.mirrors_of(row.receiver):
            if not self.presence.unlocked(mirror_id):
                continue  # greeted only: the message waits, unread, for a trusted visit
            self._fresh.setdefault(mirror_id, []).append(shown(row))
            if mirror_id not in self._flushing:
                task = asyncio.create_task(self._flush(mirror_id, row.receiver))
                self._flushing[mirror_id] = task

    async def _flush(self, mirror_id: str, user: str) -> None:
        try:
            while self._fresh.get(mirror_id):
                async with self._lock(mirror_id):
                    fresh = self._fresh.pop(mirror_id, [])
                    visit = self._visits.get(mirror_id)
                    if (visit is None or visit.user != user or not fresh
                            or not self.presence.unlocked(mirror_id)):
                        return  # they left or are locked: another display replaced theirs
                    shown_ids = self._merge(visit, fresh)
                    await self._publish(mirror_id, user, visit.messages,
                                        [m.id for m in fresh if m.id in shown_ids])
        except Exception:
            log.exception("could not show new messages on %s", mirror_id)
        finally:
            del self._flushing[mirror_id]

    async def show(self, mirror_id: str, user: str | None) -> None:
        """Tell a mirror to show ``user`` (their layout and, unlocked, their unread messages),
        or idle."""
        async with self._lock(mirror_id):
            if user is None:
                self._visits.pop(mirror_id, None)
                await self._publish(mirror_id, None, [], [])
                return
            visit = self._visits.get(mirror_id)
            if visit is None or visit.user != user:
                visit = self._visits[mirror_id] = _Visit(user)
            if not self.presence.unlocked(mirror_id):
                await self._publish(mirror_id, user, [], [])
                return
            unread = [shown(row) for row in await self.messages.unread(user, self.max_messages)]
            shown_ids = self._merge(visit, unread)
            await self._publish(mirror_id, user, visit.messages,
                                [m.id for m in unread if m.id in shown_ids])

    def _merge(self, visit: _Visit, new: list[DisplayMessage]) -> set[int]:
        """Add ``new`` to the visit's messages, newest first, as many as a display holds (a
        burst beyond that shows its newest; the rest stay unread); the ids now on display."""
        seen = {m.id for m in visit.messages}  # a new visit may have read them already
        visit.messages.extend(m for m in new if m.id not in seen)
        visit.messages.sort(key=lambda m: m.id, reverse=True)
        del visit.messages[self.max_messages:]
        return {m.id for m in visit.messages}

    async def forget(self, username: str) -> None:
        """The account is gone: mirrors showing it go idle, and displays holding messages it
        sent are sent again without them (they are deleted from the database before this)."""
        for mirror_id in self.presence.leave(username):
            await self.show(mirror_id, None)
        await self._revise(username, None)

    async def rename(self, old: str, new: str) -> None:
        """Mirrors showing ``old`` go idle (the next frame recognises the person as ``new``);
        displays holding messages from ``old`` are sent again with the new name."""
        for mirror_id in self.presence.leave(old):
            await self.show(mirror_id, None)
        await self._revise(old, new)

    async def _revise(self, sender: str, renamed: str | None) -> None:
        """Drop (``renamed`` None) or rename the messages of ``sender`` on every visit, and
        send those displays again."""
        for mirror_id, visit in list(self._visits.items()):
            if not any(m.sender == sender for m in visit.messages):
                continue
            async with self._lock(mirror_id):
                visit.messages = [
                    m.model_copy(update={"sender": renamed}) if m.sender == sender else m
                    for m in visit.messages if renamed is not None or m.sender != sender]
            if self.presence.user_at(mirror_id) == visit.user:
                await self.show(mirror_id, visit.user)

    def _lock(self, mirror_id: str) -> asyncio.Lock:
        return _lock_of(self._locks, mirror_id)

    async def _publish(self, mirror_id: str, user: str | None,
                       messages: list[DisplayMessage], fresh: list[int]) -> None:
        """Send the display; once the broker has it, the ``fresh`` messages (not shown on this
        visit before) are read."""
        model_code = await self.mirrors.model_code(mirror_id)
        display = Display(
            mirror_id=mirror_id,
            state="present" if user else "idle",
            user=user,
            unlocked=user is not None and self.presence.unlocked(mirror_id),
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
