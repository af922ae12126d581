"""The optional anti-spoofing model (``MIRRORHUB_LIVENESS_MODEL``) at a mirror: the tracker's
verdict follows it, on tiny models built here that always say spoof or always say real, with
the add-on's signature (tests/services/vision/onnx_models.py)."""

from __future__ import annotations

import dataclasses
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import onnx
import pytest

from schemas.errors import ConfigError
from services.vision.analysis import Analysis, open_spoof_model, worker_pool
from services.vision.config import VisionSettings
from services.vision.dlib_engine import DlibEngine
from services.vision.engine import LocatedFace, RGBImage
from services.vision.images import ImageLimits
from services.vision.insightface_liveness import InsightFaceLiveness, LivenessScore
from services.vision.sightings import follow
from services.vision.spoof import SpoofModel, judge, keypoints_for
from services.vision.tracking import Tracker, TrackSettings
from services.vision.watch import Liveness, LivenessSettings, Mode, Watch
from tests.conftest import photo
from tests.services.vision.onnx_models import constant_liveness_model
from tests.services.vision.support import Photos
from tests.services.vision.test_tracking import Camera

addon = pytest.importorskip("insightface.addons.liveness",
                            reason="the insightface extra is not installed (make insightface)")
REPO = Path(__file__).resolve().parents[3]


def saved(directory: Path, live: float) -> Path:
    path = directory / f"always_{live}.onnx"
    onnx.save(constant_liveness_model(live), path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, InsightFaceLiveness]]:
    directory = tmp_path_factory.mktemp("spoof")
    with (InsightFaceLiveness(saved(directory, 0.0)) as spoof,
          InsightFaceLiveness(saved(directory, 1.0)) as real):
        yield {"spoof": spoof, "real": real}


@pytest.fixture(scope="module")
def clip(photos: Photos) -> dict[int, RGBImage]:
    return {int(Path(relative).stem[-3:]): photos.image(relative)
            for relative in photos.listing("video/hamilton")}


def show(engine: DlibEngine, clip: dict[int, RGBImage], first: int, last: int,
         model: SpoofModel | None) -> list[Liveness]:
    """Frames ``first`` to ``last`` through a passive tracker, judged by ``model``."""
    camera = Camera()
    tracker = Tracker(TrackSettings(liveness=LivenessSettings(mode=Mode.PASSIVE)), 0.6, camera)
    seen = []
    for number, image in sorted(clip.items()):
        if first <= number <= last:
            planned = tracker.plan("m1")
            tracked = tracker.update(planned, follow(engine, image, planned.plan, model))
            camera.tick()
            if tracked:
                seen.append(tracked[0].liveness)
    return seen


def test_a_confident_spoof_is_never_live(engine: DlibEngine, clip: dict[int, RGBImage],
                                         models: dict[str, InsightFaceLiveness]) -> None:
    # Without a model the head turning back (frames 130 to 150) shows live; the model says no.
    assert show(engine, clip, 130, 150, None)[-1] == Liveness(True, "passive: the head turned")
    seen = show(engine, clip, 130, 150, models["spoof"])
    assert not any(each.live for each in seen)
    assert seen[-1].reason == ("model: the liveness model judged the face a spoof (live"
                               " probability 0.00, 0.2 needed)")


def test_a_confident_real_lowers_the_bar(engine: DlibEngine, clip: dict[int, RGBImage],
                                         models: dict[str, InsightFaceLiveness]) -> None:
    # Frames 144 to 160: he ends his turn back facing the camera, the nose moving less than the
    # 0.10 eye gaps the cues alone ask (scores up to about 0.85); with the model sure, 0.75 is
    # enough.
    alone = show(engine, clip, 144, 160, None)
    assert len(alone) >= 12 and not any(each.live for each in alone)
    seen = show(engine, clip, 144, 160, models["real"])
    assert seen[-1].live
    assert seen[-1].reason.startswith("passive: the head moved (score 0.")
    assert seen[-1].reason.endswith(") and the liveness model judged the face real")
    # A head that holds still (one frame, twelve times) is not live for the model's word alone.
    still = dict.fromkeys(range(12), clip[150])
    assert not any(each.live for each in show(engine, still, 0, 11, models["real"]))


def test_faces_are_aligned_by_their_keypoints_or_else_their_eyes(photos: Photos) -> None:
    (found,) = photos.faces("train/obama/obama.jpg")
    assert found.keypoints is not None and keypoints_for(found) == found.keypoints
    face = dataclasses.replace(found, keypoints=None)  # dlib's own points alone
    points = keypoints_for(face)
    template = addon.DESTINATION_LANDMARKS
    assert points[0] == pytest.approx(face.left_eye) and points[1] == pytest.approx(face.right_eye)
    # A similarity: the template's shape, scaled by the eye gaps' ratio.
    scale = math.dist(face.left_eye, face.right_eye) / math.dist(template[0], template[1])
    assert math.dist(points[2], points[3]) == pytest.approx(
        scale * math.dist(template[2], template[3]), rel=1e-6)


def test_a_bad_model_file_stops_the_start_with_one_line(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x01garbage, not a protobuf of a model")
    for path, says in ((corrupt, "is not a loadable ONNX model"),
                       (tmp_path / "missing.onnx", "missing")):
        with pytest.raises(ConfigError) as caught:
            open_spoof_model(path)
        message = str(caught.value)
        assert "\n" not in message and str(path) in message and says in message, message
        assert message.startswith("MIRRORHUB_LIVENESS_MODEL: ")
    assert open_spoof_model(None) is None
    # The service, started with it, says so in one line and exits 2.
    env = {"MIRRORHUB_DATA_DIR": str(tmp_path / "data"), "MIRRORHUB_LIVENESS_MODEL": str(corrupt),
           "MIRRORHUB_BROKER_URL": "mqtt://127.0.0.1:1", "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "mirrorhub.cli", "service", "vision"], env=env,
                         cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert run.returncode == 2, run.stderr
    assert run.stderr.splitlines()[-1].startswith(
        f"mirrorhub: MIRRORHUB_LIVENESS_MODEL: {corrupt} is not a loadable ONNX model"), run.stderr


def test_the_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MIRRORHUB_LIVENESS_MODEL", "/models/minifasnet.onnx")
    assert VisionSettings.from_env(tmp_path).liveness_model == Path("/models/minifasnet.onnx")
    monkeypatch.delenv("MIRRORHUB_LIVENESS_MODEL")
    assert VisionSettings.from_env(tmp_path).liveness_model is None


async def test_frames_are_judged_where_the_engine_runs(
        tmp_path: Path, engine: DlibEngine, models: dict[str, InsightFaceLiveness]) -> None:
    """In a thread with the service's model, and in a worker process with its own."""
    frame = photo("video/hamilton/frame_100.jpg")
    plan = Tracker(TrackSettings(), 0.6).plan("m1").plan
    limits = ImageLimits()
    in_thread = await Analysis(engine, limits, None, models["spoof"]).follow(frame, plan)
    assert [s.spoof for s in in_thread.sightings] == [LivenessScore(0.0, False)]
    assert [s.spoof for s in (await Analysis(engine, limits).follow(frame, plan)).sightings] == [
        None]
    settings = VisionSettings(data_dir=tmp_path, database_url="sqlite://:memory:",
                              threshold=None, processes=1,
                              liveness_model=saved(tmp_path, 1.0))
    async with worker_pool(settings) as pool:
        in_worker = await Analysis(engine, limits, pool).follow(frame, plan)
    assert [s.spoof for s in in_worker.sightings] == [LivenessScore(1.0, True)]


def test_a_face_the_model_cannot_judge_adds_nothing(
        photos: Photos, models: dict[str, InsightFaceLiveness]) -> None:
    image = photos.image("train/obama/obama.jpg")
    (found,) = photos.faces("train/obama/obama.jpg")
    face = LocatedFace(box=found.box, landmarks=found.landmarks, score=found.score,
                       left_eye=found.left_eye, right_eye=found.right_eye, nose=found.nose)
    squashed = LocatedFace(box=face.box, landmarks=face.landmarks, score=face.score,
                           left_eye=face.left_eye, right_eye=face.left_eye, nose=face.nose)
    verdict = judge(models["spoof"], image, squashed)
    assert (verdict.live_score, verdict.is_live) == (None, None)
    assert verdict.rejected == "the eyes coincide: nothing to align"
    watch = Watch(LivenessSettings(mode=Mode.PASSIVE), 0.0)
    seen = [watch.see(face, n / 10, verdict) for n in range(4)]
    assert all(not each.reason.startswith("model:") for each in seen), seen
    assert judge(models["spoof"], image, face) == LivenessScore(0.0, False)
