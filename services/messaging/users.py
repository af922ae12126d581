"""Which usernames exist, asked of the auth service over the bus (services share no tables)."""

from __future__ import annotations

import time

from broker.client import Bus
from schemas.auth import AUTH_LOOKUP, LookupRequest
from schemas.envelope import ErrorCode
from schemas.errors import BusUnavailable, RequestTimeout, ServiceError

# How long a name auth confirmed is trusted to exist. A deletion or rename heard from auth ends
# it at once (forget, rename); a minute bounds the staleness if that event is missed.
_KNOWN_TTL = 60.0


class Users:
    """Asks ``svc/auth/lookup`` and remembers the names that exist for a while."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._known: dict[str, float] = {}

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

    async def rename(self, old: str, new: str) -> None:
        self._known.pop(old, None)
