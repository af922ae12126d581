"""Settings of the vision service from ``MIRRORHUB_*`` variables (docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from broker.settings import flag
from schemas.errors import ConfigError
from services.environment import number
from services.vision.distance import DEFAULT_CAMERA, CameraProfile, CameraProfiles
from services.vision.dlib_engine import DlibEngine
from services.vision.engine import FaceEngine
from services.vision.insightface_engine import InsightFaceEngine
from services.vision.tracking import TrackSettings
from services.vision.watch import LivenessSettings, Mode


def _cameras(spec: str) -> CameraProfiles:
    """``MIRRORHUB_CAMERA_FOCAL_PX=default=1371,1234-5678=900``: focal lengths in pixels by
    mirror model code; ``default`` for codes not listed."""
    profiles: dict[str, CameraProfile] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        code, sep, value = item.rpartition("=")
        try:
            focal = float(value)
        except ValueError as exc:
            raise ConfigError(f"MIRRORHUB_CAMERA_FOCAL_PX: {item!r} is not code=pixels") from exc
        if not sep or not code:
            raise ConfigError(f"MIRRORHUB_CAMERA_FOCAL_PX: {item!r} is not code=pixels")
        profiles[code] = CameraProfile(focal)
    default = profiles.pop("default", DEFAULT_CAMERA)
    return CameraProfiles(profiles, default)


def make_engine(kind: str, insightface_dir: Path | None) -> FaceEngine:
    """The engine ``kind`` names (``dlib`` or ``insightface`` with its pack directory)."""
    if kind == "insightface":
        assert insightface_dir is not None
        return InsightFaceEngine(insightface_dir)
    return DlibEngine()


@dataclass(frozen=True)
class VisionSettings:
    data_dir: Path
    database_url: str
    threshold: float | None  # None: the engine's default
    max_image_bytes: int = 20_000_000
    engine: str = "dlib"  # or "insightface", with insightface_dir
    insightface_dir: Path | None = None
    cameras: CameraProfiles = field(default_factory=CameraProfiles)
    # Worker processes for face analysis (services/vision/analysis.py); 0 analyses in a thread.
    processes: int = 0
    # Seconds before a tracked face's embedding is computed again (services/vision/tracking.py);
    # 0 computes it on every frame.
    track_refresh: float = TrackSettings.refresh
    # How a face at a mirror shows it is live before it unlocks messages (vision/watch.py).
    liveness: Mode = Mode.CHALLENGE
    # Signing key and lifetime in seconds of /liveness/challenge's ids (vision/challenges.py);
    # None: the key generated into the data directory.
    liveness_secret: str | None = None
    liveness_ttl: int = 60
    # How long recognitions are kept for the admin page (services/vision/recognitions.py).
    retention: timedelta = timedelta(days=30)
    # An anti-spoofing classifier for mirrors' faces (services/vision/spoof.py); None: none.
    liveness_model: Path | None = None
    # A small JPEG of each enrolled face, for the admin page's thumbnails (vision/crops.py).
    keep_face_crops: bool = False

    def make_engine(self) -> FaceEngine:
        return make_engine(self.engine, self.insightface_dir)

    @property
    def tracks(self) -> TrackSettings:
        return TrackSettings(refresh=self.track_refresh,
                             liveness=LivenessSettings(mode=self.liveness))

    @classmethod
    def from_env(cls, data_dir: Path) -> VisionSettings:
        env = os.environ
        threshold = number("MIRRORHUB_FACE_THRESHOLD", 0.0, 0.0, 10.0) or None
        max_bytes = number("MIRRORHUB_MAX_IMAGE_BYTES", 20_000_000, 1024, 1_000_000_000)
        engine = env.get("MIRRORHUB_FACE_ENGINE") or "dlib"
        if engine not in ("dlib", "insightface"):
            raise ConfigError(f"MIRRORHUB_FACE_ENGINE must be dlib or insightface, got {engine!r}")
        pack = env.get("MIRRORHUB_INSIGHTFACE_DIR")
        if engine == "insightface" and not pack:
            raise ConfigError("MIRRORHUB_FACE_ENGINE=insightface needs MIRRORHUB_INSIGHTFACE_DIR, "
                              "a local model-pack directory (models are never downloaded)")
        liveness = env.get("MIRRORHUB_LIVENESS") or Mode.CHALLENGE
        if liveness not in set(Mode):
            raise ConfigError(f"MIRRORHUB_LIVENESS must be off, passive or challenge, got"
                              f" {liveness!r}")
        model = env.get("MIRRORHUB_LIVENESS_MODEL")
        return cls(
            data_dir=data_dir,
            liveness=Mode(liveness),
            retention=timedelta(days=number("MIRRORHUB_RETENTION_DAYS", 30.0, 1e-5, 36500.0)),
            liveness_model=Path(model) if model else None,
            cameras=_cameras(env.get("MIRRORHUB_CAMERA_FOCAL_PX", "")),
            engine=engine,
            insightface_dir=Path(pack) if pack else None,
            database_url=env.get("MIRRORHUB_VISION_DATABASE_URL")
            or f"sqlite://{data_dir / 'vision.sqlite3'}",
            threshold=threshold,
            max_image_bytes=max_bytes,
            processes=number("MIRRORHUB_VISION_PROCESSES", 1, 0, 64),
            track_refresh=number("MIRRORHUB_VISION_TRACK_REFRESH", TrackSettings.refresh, 0.0,
                                 3600.0),
            liveness_secret=env.get("MIRRORHUB_LIVENESS_SECRET") or None,
            liveness_ttl=number("MIRRORHUB_LIVENESS_TTL", 60, 5, 3600),
            keep_face_crops=flag("MIRRORHUB_KEEP_FACE_CROPS"),
        )
