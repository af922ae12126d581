"""Throttling logins and password resets: too many recent failures, and the next attempt is
refused before any password is looked at.

Each attempt is written down first (a row of ``auth_failed_attempt``, ``pending`` while it
runs) and counted against the rows before it: when the same username, or the same client
address, already has its limit of failures within the window, the attempt is refused with
``throttled`` and its row removed (refusals do not count, so a lockout ends when enough of the
failures that caused it are older than the window). An attempt that succeeds removes its row;
one that fails keeps it, no longer pending. Rows are the only state, so every auth instance on
the database counts the same failures.

For one username, attempts that are still running count as failures: a burst of concurrent
guesses, on any number of instances, cannot slip past the limit together. So that a user's own
concurrent requests are not taken for a burst, one instance runs the attempts of one username
one after the other. For an address, only finished failures count: many clients share one
(behind NAT, a proxy), and their concurrent successes must not lock each other out.

Every attempt costs the same queries whether its username exists or not, and a throttled one
never looks the user up: the refusal tells nothing about which accounts exist.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import weakref
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from tortoise.queryset import QuerySet

from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from services.auth.models import FailedAttempt

# "admin": a face admin's login (services/auth/admins.py), counted apart from users' logins.
Action = Literal["login", "reset", "admin"]
_WHAT: dict[Action, str] = {"login": "login", "reset": "password reset", "admin": "login"}


@dataclass(frozen=True)
class Limits:
    max_failures: int  # per username
    max_failures_per_address: int
    window: timedelta


class Attempt:
    """One attempt under way: it is a failure unless :meth:`succeeded` is called."""

    def __init__(self) -> None:
        self.ok = False

    def succeeded(self) -> None:
        self.ok = True


class Throttle:
    """The throttling of the auth service's logins and resets (see the module docstring)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._running: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary())

    @contextlib.asynccontextmanager
    async def attempt(
        self, action: Action, username: str, address: str | None
    ) -> AsyncIterator[Attempt]:
        """Run one attempt of ``action`` for ``username`` from ``address`` (None: unknown, no
        per-address limit); ``throttled``, with ``retry_after`` in seconds, instead when either
        is over its limit. The attempt counts as a failure unless the body calls
        :meth:`Attempt.succeeded`."""
        lock = self._running.setdefault((action, username), asyncio.Lock())
        async with lock:
            row = await self._begin(action, username, address)
            attempt = Attempt()
            try:
                yield attempt
            finally:
                if attempt.ok:
                    await FailedAttempt.filter(id=row).delete()
                else:
                    await FailedAttempt.filter(id=row).update(pending=False)

    async def _begin(self, action: Action, username: str, address: str | None) -> int:
        now = datetime.now(UTC)
        since = now - self.limits.window
        await FailedAttempt.filter(at__lte=since).delete()
        row = await FailedAttempt.create(action=action, username=username, address=address,
                                         at=now)
        earlier = FailedAttempt.filter(action=action, at__gt=since, id__lt=row.id)
        checks = [(earlier.filter(username=username), self.limits.max_failures)]
        if address is not None:
            checks.append((earlier.filter(address=address, pending=False),
                           self.limits.max_failures_per_address))
        waits = [wait for rows, limit in checks
                 if (wait := await self._locked_for(rows, limit, now)) is not None]
        if waits:
            await FailedAttempt.filter(id=row.id).delete()
            retry_after = max(1, math.ceil(max(waits).total_seconds()))
            raise ServiceError(
                ErrorCode.THROTTLED,
                f"Too many failed {_WHAT[action]} attempts; try again in {retry_after} seconds",
                retry_after=retry_after,
            )
        return row.id

    async def _locked_for(
        self, rows: QuerySet[FailedAttempt], limit: int, now: datetime
    ) -> timedelta | None:
        """How long ``rows`` (failures within the window) stay at ``limit`` or more: until the
        limit-th newest leaves the window. None when they are fewer."""
        counted = await rows.order_by("-at", "-id").offset(limit - 1).first()
        return None if counted is None else counted.at + self.limits.window - now
