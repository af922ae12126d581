"""Who stands at which mirror, debounced: the rules alone, with time passed in.

A mirror shows one person. Seeing them again keeps them; somebody else takes over only once the
person on display has been unseen for ``hold`` seconds; nobody seen for ``idle_after`` seconds
sends the mirror back to idle. Frames where a face flickers out and in again therefore change
nothing, and two people taking turns in front of the camera do not flip the display each frame.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Seen:
    user: str
    last_seen: float


class Presence:
    def __init__(self, hold: float, idle_after: float) -> None:
        self.hold = hold
        self.idle_after = idle_after
        self._at: dict[str, _Seen] = {}

    def seen(self, mirror_id: str, names: list[str], now: float) -> str | None:
        """Record the enrolled people seen at a mirror, largest face first; returns who the
        mirror should show now if that changed, else None."""
        if not names:
            return None
        current = self._at.get(mirror_id)
        if current is not None and current.user in names:
            current.last_seen = max(current.last_seen, now)
            return None
        if current is not None and now - current.last_seen < self.hold:
            return None
        self._at[mirror_id] = _Seen(names[0], now)
        return names[0]

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
