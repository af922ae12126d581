"""Who stands at which mirror, debounced: the rules alone, with time passed in.

A mirror shows one person. Seeing them again keeps them; somebody else takes over only once the
person on display has been unseen for ``hold`` seconds; nobody seen for ``idle_after`` seconds
sends the mirror back to idle. Frames where a face flickers out and in again therefore change
nothing, and two people taking turns in front of the camera do not flip the display each frame.

Whether the person on display is **unlocked** (their private content shown: vision counted
their face among the ``trusted`` ones, docs/http-api.md "Trust at the mirror") follows the same
rule: a trusted sighting unlocks at once; untrusted sightings of the same name lock the display
again only once no trusted one has come for ``hold`` seconds, as if somebody else had stepped
in (it may be: a face enrolled under their name without their token).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass


@dataclass
class _Seen:
    user: str
    last_seen: float
    unlocked: bool
    last_trusted: float


class Presence:
    def __init__(self, hold: float, idle_after: float) -> None:
        self.hold = hold
        self.idle_after = idle_after
        self._at: dict[str, _Seen] = {}

    def seen(self, mirror_id: str, names: list[str], now: float,
             trusted: Collection[str] = ()) -> str | None:
        """Record the enrolled people seen at a mirror, largest face first, and which of them
        were ``trusted``; returns who the mirror should show now if that, or whether they are
        unlocked (:meth:`unlocked`), changed, else None."""
        if not names:
            return None
        current = self._at.get(mirror_id)
        if current is not None and current.user in names:
            current.last_seen = max(current.last_seen, now)
            if current.user in trusted:
                current.last_trusted = max(current.last_trusted, now)
                if not current.unlocked:
                    current.unlocked = True
                    return current.user
            elif current.unlocked and now - current.last_trusted >= self.hold:
                current.unlocked = False
                return current.user
            return None
        if current is not None and now - current.last_seen < self.hold:
            return None
        self._at[mirror_id] = _Seen(names[0], now, names[0] in trusted, now)
        return names[0]

    def unlocked(self, mirror_id: str) -> bool:
        """Whether the person the mirror shows may see their private content."""
        seen = self._at.get(mirror_id)
        return seen is not None and seen.unlocked

    def leave(self, user: str) -> list[str]:
        """Forget ``user`` wherever they stand (their account is gone or renamed); returns the
        mirrors that showed them, which should go idle."""
        gone = self.mirrors_of(user)
        for mirror_id in gone:
            del self._at[mirror_id]
        return gone

    def expired(self, now: float) -> list[str]:
        """Mirrors whose person has been unseen for ``idle_after``: they go idle (and are
        forgotten here)."""
        gone = [m for m, seen in self._at.items() if now - seen.last_seen >= self.idle_after]
        for mirror_id in gone:
            del self._at[mirror_id]
        return gone

    def user_at(self, mirror_id: str) -> str | None:
        seen = self._at.get(mirror_id)
        return seen.user if seen else None

    def mirrors_of(self, user: str) -> list[str]:
        """The mirrors showing ``user`` now (usually one)."""
        return [m for m, seen in self._at.items() if seen.user == user]

    def next_expiry(self) -> float | None:
        """When the earliest mirror would go idle, if nobody is seen again before."""
        if not self._at:
            return None
        return min(seen.last_seen for seen in self._at.values()) + self.idle_after
