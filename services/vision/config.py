"""Settings of the vision service from ``MIRRORHUB_*`` variables (docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from broker.errors import ConfigError


@dataclass(frozen=True)
class VisionSettings:
    data_dir: Path
    database_url: str
    threshold: float | None  # None: the engine's default
    max_image_bytes: int = 20_000_000

    @classmethod
    def from_env(cls, data_dir: Path) -> VisionSettings:
        env = os.environ
        raw = env.get("MIRRORHUB_FACE_THRESHOLD")
        try:
            threshold = float(raw) if raw else None
            max_bytes = int(env.get("MIRRORHUB_MAX_IMAGE_BYTES") or 20_000_000)
        except ValueError as exc:
            raise ConfigError(f"vision settings: {exc}") from exc
        return cls(
            data_dir=data_dir,
            database_url=env.get("MIRRORHUB_VISION_DATABASE_URL")
            or f"sqlite://{data_dir / 'vision.sqlite3'}",
            threshold=threshold,
            max_image_bytes=max_bytes,
        )
