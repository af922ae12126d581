"""Which usernames exist, asked of the auth service over the bus (services share no tables)."""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass

from broker.client import Bus
from schemas.auth import AUTH_LOOKUP, LookupRequest
from schemas.envelope import ErrorCode
from schemas.errors import BusUnavailable, RequestTimeout, ServiceError

# How long a name auth confirmed is trusted to exist. A deletion or rename heard from auth ends
# it at once (forget, rename); a minute bounds the staleness if that event is missed.
_KNOWN_TTL = 60.0
# A name deleted or renamed away is kept this long, so that vision naming it (a worker that has
# not heard yet, a frame analysed before) shows nobody; every vision worker has applied the
# deletion by then (they catch up on tombstones every 10 minutes). Auth is asked again, at most
# every _GONE_RECHECK seconds, whether the name is an account again (registered anew).
_GONE_FOR = 15 * 60.0
_GONE_RECHECK = 5.0


class Users:
    """Asks ``svc/auth/lookup`` and remembers the names that exist for a while."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._known: dict[str, float] = {}
        self._gone: dict[str, _Gone] = {}

    async def missing(self, *usernames: str) -> set[str]:
        """The names among ``usernames`` that have no account."""
        now = time.monotonic()
        unsure = {name for name in usernames if self._known.get(name, 0.0) < now}
        if not unsure:
            return set()
        try:
            reply = await self.bus.request(AUTH_LOOKUP, LookupRequest(usernames=sorted(unsure)))
        except (BusUnavailable, RequestTimeout) as exc:
            raise ServiceError(ErrorCode.UNAVAILABLE,
                               f"the auth service cannot check usernames: {exc}") from exc
        for name in reply.found:
            self._known[name] = now + _KNOWN_TTL
        return unsure - set(reply.found)

    async def forget(self, username: str) -> None:
        """The account is gone: ask auth again before taking the name."""
        self._known.pop(username, None)
        now = time.monotonic()
        self._gone[username] = _Gone(until=now + _GONE_FOR, recheck=now)

    async def rename(self, old: str, new: str) -> None:
        await self.forget(old)

    async def gone(self, usernames: Collection[str]) -> set[str]:
        """The names among ``usernames`` whose account this service saw deleted or renamed
        away lately and that auth does not know again. While auth cannot be asked they stay
        gone: a deleted person is never shown for want of an answer."""
        if not self._gone:  # the common case, on every recognition
            return set()
        now = time.monotonic()
        for name, gone in list(self._gone.items()):
            if gone.until <= now:
                del self._gone[name]
        due = sorted(name for name in usernames
                     if name in self._gone and self._gone[name].recheck <= now)
        if due:
            try:
                missing = await self.missing(*due)
            except ServiceError:
                missing = set(due)
            for name in due:
                if name in missing:
                    self._gone[name].recheck = now + _GONE_RECHECK
                else:
                    del self._gone[name]  # an account again
        return {name for name in usernames if name in self._gone}


@dataclass
class _Gone:
    until: float
    recheck: float
