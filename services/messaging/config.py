"""Settings of the messaging service from ``MIRRORHUB_*`` variables (docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.environment import number


@dataclass(frozen=True)
class MessagingSettings:
    data_dir: Path
    database_url: str
    # Nobody recognised at a mirror for this long: the mirror goes back to its idle layout.
    idle_after: float = 30.0
    # Somebody else is only shown once the person on display has been unseen this long, so two
    # faces taking turns in front of the camera do not flip the display on every frame.
    hold: float = 3.0
    # Names the persistent MQTT session: requests sent while the service restarts wait for it.
    instance: str = "main"
    display_messages: int = 10  # unread messages a mirror shows at most

    @classmethod
    def from_env(cls, data_dir: Path) -> MessagingSettings:
        env = os.environ
        return cls(
            data_dir=data_dir,
            database_url=env.get("MIRRORHUB_MESSAGING_DATABASE_URL")
            or f"sqlite://{data_dir / 'messaging.sqlite3'}",
            idle_after=number("MIRRORHUB_IDLE_AFTER", 30.0, 0.1, 86400),
            hold=number("MIRRORHUB_PRESENCE_HOLD", 3.0, 0.0, 3600),
            instance=env.get("MIRRORHUB_MESSAGING_INSTANCE") or "main",
        )
