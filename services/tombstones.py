"""Following account deletions and renames in a service that keeps data of users (vision's
faces, messaging's messages and layouts): shared plumbing, not a service.

A service declares :class:`Tombstones` as one of its parts::

    Listener(AUTH_USER_DELETED, Tombstones.on_deleted),   # every instance hears it
    Listener(AUTH_USER_RENAMED, Tombstones.on_renamed),
    tasks=(Tombstones.catch_up,),

and gives it what to do with an account's data (:class:`AccountData`; for data kept under
usernames alone, :class:`ByName` over a list of :class:`Forgetter`). Removing and renaming must
be idempotent: an event may arrive twice (QoS 1), and a deletion is applied again by the
catch-up after its event.

**Catching up.** A service that was down when an account was deleted did not hear the event
(or not at all, with a clean session). Auth keeps a tombstone of every deletion, numbered by
``seq`` without gaps (services/auth/deletions.py); the service stores the last ``seq`` it has
applied (:class:`Cursor`, a one-row table of its own) and :meth:`Tombstones.catch_up` asks
``svc/auth/deletions`` for what came after it: when the service starts, after every reconnection
to the broker, after each live event (which also moves the cursor on) and every ``poll``
seconds. While auth cannot be reached it retries with a backoff of 0.5 s doubling to 30 s. It
runs beside the service's other work, which does not wait for it: until it has run, a
restarted service may still hold data of an account deleted while it was away.

Tombstones older than auth keeps them (``MIRRORHUB_DELETION_RETENTION_DAYS``) are gone: a
service away for longer logs which deletions it missed, and cannot apply them. Renames have no
tombstones: a service that misses a rename keeps the data under the old name (docs).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import Protocol

from pydantic import ValidationError
from tortoise.models import Model

from broker.client import Bus, Message
from schemas.auth import (
    AUTH_DELETIONS,
    DeletionsRequest,
    UserDeleted,
    UserRenamed,
)
from schemas.errors import BusUnavailable, RequestTimeout, ServiceError

log = logging.getLogger(__name__)

PAGE = 200  # tombstones asked for at a time
CURSOR_ID = 1  # the cursor table's one row (made by the service's migration)
_BACKOFF_MIN, _BACKOFF_MAX = 0.5, 30.0


class AccountData(Protocol):
    """What a service does with the data it keeps of an account."""

    async def forget(self, gone: UserDeleted) -> None: ...

    async def rename(self, change: UserRenamed) -> None: ...


class Forgetter(Protocol):
    """Data a service keeps under usernames: remove a user's, move it to a new name. Both are
    idempotent, and a no-op for a name that has nothing."""

    async def forget(self, username: str) -> None: ...

    async def rename(self, old: str, new: str) -> None: ...


class ByName:
    """:class:`AccountData` for data kept under usernames: every forgetter, in order."""

    def __init__(self, forgetters: Sequence[Forgetter]) -> None:
        self.forgetters = tuple(forgetters)

    async def forget(self, gone: UserDeleted) -> None:
        for forgetter in self.forgetters:
            await forgetter.forget(gone.username)

    async def rename(self, change: UserRenamed) -> None:
        for forgetter in self.forgetters:
            await forgetter.rename(change.old_username, change.new_username)


class Cursor:
    """The last tombstone ``seq`` a service applied, in row ``id = 1`` of ``model`` (a table
    with ``id`` and ``last_seq``, its row made by the service's migration). Instances sharing a
    database share it."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model

    async def load(self) -> int:
        rows = await self.model.filter(id=CURSOR_ID).values("last_seq")
        return int(rows[0]["last_seq"]) if rows else 0

    async def advance(self, seq: int) -> None:
        """Move forward to ``seq``; never back (another instance may be further on)."""
        await self.model.filter(id=CURSOR_ID, last_seq__lt=seq).update(last_seq=seq)

    async def rewind(self, seq: int) -> None:
        await self.model.filter(id=CURSOR_ID).update(last_seq=seq)


class Tombstones:
    """The listeners of ``events/auth/user_deleted`` and ``user_renamed``, and the catch-up
    task (see the module docstring)."""

    def __init__(self, bus: Bus, data: AccountData, cursor: Cursor, *,
                 poll: float = 600.0) -> None:
        self.bus = bus
        self.data = data
        self.cursor = cursor
        self.poll = poll
        self._due = asyncio.Event()
        self._applied: set[int] = set()  # seqs applied from live events, ahead of the cursor
        self._lock = asyncio.Lock()  # one change at a time, in the order they came
        self.caught_up = asyncio.Event()  # set once a catch-up has completed; tests wait on it
        bus.on_connect(self._reconnected)

    async def _reconnected(self) -> None:
        self._due.set()  # events may have been missed while the connection was down

    async def on_deleted(self, message: Message) -> None:
        try:
            gone = UserDeleted.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("ignored a user_deleted event: %s", exc.errors()[0]["msg"])
            return
        try:
            async with self._lock:
                await self.data.forget(gone)
                self._applied.add(gone.seq)
        finally:
            # Move the cursor on and find any deletion missed before this one; had this one
            # failed, the catch-up applies it again.
            self._due.set()

    async def on_renamed(self, message: Message) -> None:
        try:
            change = UserRenamed.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("ignored a user_renamed event: %s", exc.errors()[0]["msg"])
            return
        if change.old_username == change.new_username:
            return
        async with self._lock:
            await self.data.rename(change)

    async def catch_up(self) -> None:
        """Apply the tombstones after the cursor, then again whenever it is due, until
        cancelled; failures are retried with a backoff and never end the task."""
        backoff = _BACKOFF_MIN
        while True:
            self._due.clear()
            try:
                await self._drain()
            except (BusUnavailable, RequestTimeout, ServiceError) as exc:
                log.warning("%s: cannot catch up on deleted accounts yet (%s); retrying in "
                            "%g s", self.bus.client_id, exc, backoff)
                wait, backoff = backoff, min(backoff * 2, _BACKOFF_MAX)
            except Exception:
                log.exception("%s: catching up on deleted accounts failed; retrying in %g s",
                              self.bus.client_id, backoff)
                wait, backoff = backoff, min(backoff * 2, _BACKOFF_MAX)
            else:
                wait, backoff = self.poll, _BACKOFF_MIN
                self.caught_up.set()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._due.wait()

    async def _drain(self) -> None:
        after = await self.cursor.load()
        while True:
            reply = await self.bus.request(AUTH_DELETIONS,
                                           DeletionsRequest(after=after, limit=PAGE))
            if reply.last_seq < after:
                # Auth's numbering restarted (a new auth database): read it from the start.
                log.warning("%s: auth's deletions end at %d, before the %d applied here; "
                            "starting over", self.bus.client_id, reply.last_seq, after)
                after = 0
                await self.cursor.rewind(0)
                continue
            first = reply.deletions[0].seq if reply.deletions else reply.last_seq + 1
            if first > after + 1:
                log.error("%s: deletions %d to %d were purged by auth before this service "
                          "applied them: data of those accounts may remain here",
                          self.bus.client_id, after + 1, first - 1)
            for gone in reply.deletions:
                async with self._lock:
                    if gone.seq not in self._applied:
                        await self.data.forget(gone)
                    self._applied.discard(gone.seq)
                after = gone.seq
            after = max(after, first - 1)
            await self.cursor.advance(after)
            self._applied = {seq for seq in self._applied if seq > after}
            if len(reply.deletions) < PAGE:
                return
