"""insightface's liveness add-on on a tiny stand-in model (``onnx_models.liveness_model``)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest

from schemas.errors import ConfigError
from services.vision.insightface_engine import InsightFaceEngine
from services.vision.insightface_liveness import InsightFaceLiveness
from tests.services.vision.onnx_models import (
    LIVENESS_FACE_SHARE,
    arcface_model,
    blank_image,
    draw_face,
    face_keypoints,
    liveness_model,
    write_pack,
)

pytest.importorskip(
    "insightface.addons.liveness",
    reason="the insightface extra is not installed (make insightface)",
)


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("liveness") / "liveness.onnx"
    onnx.save(liveness_model(), path)
    return path


@pytest.fixture(scope="module")
def liveness(model_file: Path) -> Iterator[InsightFaceLiveness]:
    with InsightFaceLiveness(model_file, threshold=0.3) as opened:
        yield opened


@pytest.mark.parametrize(
    ("height", "width", "left", "top", "size"),
    [(480, 640, 200, 120, 200), (1080, 1920, 1300, 500, 380), (300, 200, 50, 80, 90)],
)
def test_an_aligned_face_is_scored(
    liveness: InsightFaceLiveness, height: int, width: int, left: int, top: int, size: int
) -> None:
    image = blank_image(height, width)
    draw_face(image, left, top, size, identity=3)
    result = liveness.score(image, face_keypoints(left, top, size).tolist())
    # The face covers its share of the crop wherever it was and however large: aligned.
    assert result.live_score == pytest.approx(LIVENESS_FACE_SHARE, abs=0.02)
    assert (result.is_live, result.rejected) == (True, None)


def test_the_threshold_decides(model_file: Path) -> None:
    image = blank_image(480, 640)
    draw_face(image, 200, 120, 200, identity=3)
    points = face_keypoints(200, 120, 200).tolist()
    with InsightFaceLiveness(model_file) as strict:  # the package's default, 0.8
        result = strict.score(image, points)
    assert result.is_live is False
    assert result.live_score == pytest.approx(LIVENESS_FACE_SHARE, abs=0.02)


def test_the_engines_keypoints_feed_it(tmp_path: Path, liveness: InsightFaceLiveness) -> None:
    image = blank_image(720, 1280)
    draw_face(image, 500, 200, 240, identity=4)
    with InsightFaceEngine(write_pack(tmp_path / "pack")) as engine:
        (face,) = engine.analyse(image)
    result = liveness.score(image, face.landmarks)
    assert result.live_score == pytest.approx(LIVENESS_FACE_SHARE, abs=0.02)


def test_a_face_mostly_out_of_frame_is_not_judged(liveness: InsightFaceLiveness) -> None:
    image = blank_image(480, 640)
    # Keypoints of a face centred on the top-left corner: three quarters of its crop is outside.
    result = liveness.score(image, face_keypoints(-100, -100, 200).tolist())
    assert (result.live_score, result.is_live) == (None, None)
    assert result.rejected is not None and "face" in result.rejected


def test_bad_input_is_refused(model_file: Path, liveness: InsightFaceLiveness) -> None:
    image = blank_image(480, 640)
    with pytest.raises(ValueError, match="uint8"):
        liveness.score(image.astype(np.float32), face_keypoints(10, 10, 100).tolist())
    with pytest.raises(ValueError, match="five"):
        liveness.score(image, face_keypoints(10, 10, 100)[:4].tolist())
    with pytest.raises(RuntimeError, match="not open"):
        InsightFaceLiveness(model_file).score(image, face_keypoints(10, 10, 100).tolist())


def test_the_model_version_follows_the_file(tmp_path: Path, model_file: Path) -> None:
    copy = Path(shutil.copy(model_file, tmp_path / "copy.onnx"))
    versions = []
    for path in (model_file, copy):
        with InsightFaceLiveness(path) as opened:
            versions.append(opened.model_version)
    assert versions[0].split("@")[1] == versions[1].split("@")[1]
    assert versions[0].startswith("insightface-liveness:liveness@")


def test_a_missing_or_misnamed_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere\.onnx.*never downloaded"):
        InsightFaceLiveness(tmp_path / "nowhere.onnx").__enter__()
    with pytest.raises(ConfigError, match=r"\.onnx"):
        InsightFaceLiveness(tmp_path / "liveness").__enter__()


def test_other_models_and_thresholds_are_refused(tmp_path: Path, model_file: Path) -> None:
    recogniser = tmp_path / "arcface.onnx"
    onnx.save(arcface_model(), recogniser)
    with pytest.raises(ConfigError, match=r"not a loadable ONNX model.*80, 80"):
        InsightFaceLiveness(recogniser).__enter__()
    with pytest.raises(ConfigError, match="between 0 and 1"):
        InsightFaceLiveness(model_file, threshold=1.5).__enter__()
