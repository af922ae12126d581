"""Choosing the face engine from the environment."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from schemas.errors import ConfigError
from services.vision.config import VisionSettings
from services.vision.dlib_engine import DlibEngine
from services.vision.insightface_engine import InsightFaceEngine
from tests.services.vision.onnx_models import write_pack


def test_dlib_is_the_default(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MIRRORHUB_FACE_ENGINE", raising=False)
    settings = VisionSettings.from_env(tmp_path)
    assert isinstance(settings.make_engine(), DlibEngine)
    assert settings.database_url == f"sqlite://{tmp_path / 'vision.sqlite3'}"


def test_insightface_needs_a_local_pack(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIRRORHUB_FACE_ENGINE", "insightface")
    monkeypatch.delenv("MIRRORHUB_INSIGHTFACE_DIR", raising=False)
    with pytest.raises(ConfigError, match="never downloaded"):
        VisionSettings.from_env(tmp_path)
    monkeypatch.setenv("MIRRORHUB_INSIGHTFACE_DIR", str(tmp_path))
    assert isinstance(VisionSettings.from_env(tmp_path).make_engine(), InsightFaceEngine)


def test_insightface_without_its_extra_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # None in sys.modules makes the import fail as on a machine without the extra.
    monkeypatch.setitem(sys.modules, "insightface.model_zoo", None)
    with pytest.raises(ConfigError, match=r"not installed.*make insightface"):
        InsightFaceEngine(write_pack(tmp_path / "pack")).__enter__()


def test_unknown_engine_and_bad_numbers_are_refused(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MIRRORHUB_FACE_ENGINE", "magic")
    with pytest.raises(ConfigError):
        VisionSettings.from_env(tmp_path)
    monkeypatch.setenv("MIRRORHUB_FACE_ENGINE", "dlib")
    monkeypatch.setenv("MIRRORHUB_FACE_THRESHOLD", "close")
    with pytest.raises(ConfigError):
        VisionSettings.from_env(tmp_path)


def test_the_track_refresh_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MIRRORHUB_VISION_TRACK_REFRESH", raising=False)
    assert VisionSettings.from_env(tmp_path).tracks.refresh == 2.0
    monkeypatch.setenv("MIRRORHUB_VISION_TRACK_REFRESH", "0")  # a descriptor on every frame
    assert VisionSettings.from_env(tmp_path).tracks.refresh == 0.0
    for bad in ("soon", "-1"):
        monkeypatch.setenv("MIRRORHUB_VISION_TRACK_REFRESH", bad)
        with pytest.raises(ConfigError, match="MIRRORHUB_VISION_TRACK_REFRESH"):
            VisionSettings.from_env(tmp_path)


def test_liveness_comes_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("MIRRORHUB_LIVENESS", raising=False)
    assert VisionSettings.from_env(tmp_path).tracks.liveness.mode == "challenge"
    for mode in ("off", "passive", "challenge"):
        monkeypatch.setenv("MIRRORHUB_LIVENESS", mode)
        assert VisionSettings.from_env(tmp_path).tracks.liveness.mode == mode
    monkeypatch.setenv("MIRRORHUB_LIVENESS", "sometimes")
    with pytest.raises(ConfigError, match="MIRRORHUB_LIVENESS must be off, passive or"):
        VisionSettings.from_env(tmp_path)
