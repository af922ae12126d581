"""Settings of the messaging service from ``MIRRORHUB_*`` variables (docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigError
from schemas.files import MAX_UPLOAD_DEFAULT as DEFAULT_MAX_UPLOAD
from services.environment import number

DEFAULT_QUOTA = 100 * 1024 * 1024


def max_upload_bytes() -> int:
    """``MIRRORHUB_MAX_UPLOAD_BYTES``: the bridge refuses a larger file as it arrives, and the
    service refuses one too (so a caller other than the bridge cannot store more)."""
    return number("MIRRORHUB_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD, 1, 2**40)


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
    max_upload: int = DEFAULT_MAX_UPLOAD  # bytes of one file at most
    quota: int = DEFAULT_QUOTA  # bytes of all of one user's files at most
    # An upload that has heard nothing for this long (its bridge died) is dropped.
    upload_idle: float = 60.0
    # Home Assistant's discovery prefix (one topic level); None publishes no discovery.
    ha_prefix: str | None = "homeassistant"

    @property
    def files_dir(self) -> Path:
        """Where the file store keeps its blobs and uploads in progress."""
        return self.data_dir / "messaging" / "files"

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
            max_upload=max_upload_bytes(),
            quota=number("MIRRORHUB_FILES_QUOTA_BYTES", DEFAULT_QUOTA, 1, 2**62),
            upload_idle=number("MIRRORHUB_UPLOAD_IDLE", 60.0, 1.0, 86400),
            ha_prefix=ha_prefix(env.get("MIRRORHUB_HA_DISCOVERY_PREFIX")),
        )


def ha_prefix(value: str | None) -> str | None:
    """``MIRRORHUB_HA_DISCOVERY_PREFIX``: unset is ``homeassistant`` (Home Assistant's own
    default), ``off`` none; otherwise one topic level."""
    if value is None:
        return "homeassistant"
    value = value.strip()
    if value.lower() in ("", "off", "0", "false", "no"):
        return None
    if any(c in value for c in "/+#\0") or value.startswith("$"):
        raise ConfigError(f"MIRRORHUB_HA_DISCOVERY_PREFIX must be one topic level (no /, + or "
                          f"#) or off, got {value!r}")
    return value
