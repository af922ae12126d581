"""The insightface engine on tiny stand-in models (``onnx_models``) with the real signatures.

The engine is the insightface package's model_zoo (SCRFD, ArcFaceONNX) and face_align; these
tests load, decode and align through it, so they need the extra (``make insightface``).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from schemas.errors import ConfigError
from services.vision.distance import eye_gap_px
from services.vision.engine import Box, DetectedFace, FaceEngine
from services.vision.insightface_engine import InsightFaceEngine, InsightFaceSettings
from tests.services.vision.onnx_models import (
    blank_image,
    draw_face,
    face_keypoints,
    write_pack,
)
from tests.services.vision.support import nose_place

pytest.importorskip(
    "insightface.model_zoo", reason="the insightface extra is not installed (make insightface)"
)


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pack(tmp_path_factory.mktemp("buffalo_tiny"))


@pytest.fixture(scope="module")
def engine(pack: Path) -> Iterator[InsightFaceEngine]:
    with InsightFaceEngine(pack) as opened:
        yield opened


def _one_face(engine: InsightFaceEngine, height: int, width: int, left: int, top: int,
              size: int, identity: int = 1) -> DetectedFace:
    image = blank_image(height, width, seed=height + width)
    draw_face(image, left, top, size, identity)
    (face,) = engine.analyse(image)
    return face


def test_engine_meets_the_protocol(engine: InsightFaceEngine) -> None:
    typed: FaceEngine = engine
    assert (typed.name, typed.dimension) == ("insightface", 512)
    assert 0 < typed.threshold < 2
    assert "det_10g@" in typed.model_version and "w600k_r50@" in typed.model_version


def test_missing_directory_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(ConfigError, match=r"nowhere.*never downloaded"):
        InsightFaceEngine(missing).__enter__()


def test_missing_file_is_named(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / "w600k_r50.onnx").unlink()
    with pytest.raises(ConfigError, match=r"w600k_r50\.onnx.*never downloaded") as caught:
        InsightFaceEngine(pack).__enter__()
    assert "det_10g" not in str(caught.value)


def test_file_names_are_settings(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", "scrfd.onnx", "arcface.onnx")
    settings = InsightFaceSettings(detector_file="scrfd.onnx", recogniser_file="arcface.onnx")
    with InsightFaceEngine(pack, settings) as opened:
        assert "scrfd@" in opened.model_version


def test_swapped_files_are_refused(pack: Path) -> None:
    settings = InsightFaceSettings(detector_file="w600k_r50.onnx", recogniser_file="det_10g.onnx")
    with pytest.raises(ConfigError, match="not an SCRFD detector"):
        InsightFaceEngine(pack, settings).__enter__()


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack")
    (pack / "det_10g.onnx").write_bytes(b"<html>not a model</html>")
    with pytest.raises(ConfigError, match="not a loadable ONNX model"):
        InsightFaceEngine(pack).__enter__()


def test_closed_engine_and_bad_images_are_refused(pack: Path, engine: InsightFaceEngine) -> None:
    closed = InsightFaceEngine(pack)
    with pytest.raises(RuntimeError, match="not open"):
        closed.analyse(blank_image(64, 64))
    with pytest.raises(RuntimeError, match="not open"):
        _ = closed.model_version
    with pytest.raises(ValueError, match="uint8"):
        engine.analyse(np.zeros((64, 64, 3), dtype=np.float32))


def test_settings_are_checked() -> None:
    with pytest.raises(ConfigError, match="multiple of 32"):
        InsightFaceSettings(detect_size=600)
    with pytest.raises(ConfigError, match="threshold"):
        InsightFaceSettings(threshold=2.5)


def test_empty_image_has_no_faces(engine: InsightFaceEngine) -> None:
    assert engine.analyse(blank_image(480, 640)) == []


@pytest.mark.parametrize(
    ("height", "width", "left", "top", "size"),
    [
        (640, 640, 200, 150, 180),  # fills the canvas: no scaling
        (480, 640, 37, 250, 120),  # wide: padding below
        (1000, 500, 300, 611, 150),  # tall: padding on the right
        (1080, 1920, 1400, 300, 260),  # shrunk by 3
        (300, 200, 40, 90, 100),  # enlarged by 2.13
        (101, 333, 230, 10, 80),  # odd sizes: the two axes round differently
    ],
)
def test_box_and_keypoints_map_back_through_the_letterbox(
    engine: InsightFaceEngine, height: int, width: int, left: int, top: int, size: int
) -> None:
    face = _one_face(engine, height, width, left, top, size)
    # An edge blurred by resizing lands within a canvas pixel, which is 1/scale image pixels.
    tolerance = 1 + 2 * max(height, width) / 640
    got = np.array([face.box.left, face.box.top, face.box.right, face.box.bottom])
    want = np.array([left, top, left + size, top + size])
    assert np.abs(got - want).max() <= tolerance, (face.box, want)
    assert np.abs(np.array(face.landmarks) - face_keypoints(left, top, size)).max() <= tolerance
    assert face.score > 0.5


@pytest.mark.parametrize(("left", "top", "size"), [(100, 100, 200), (400, 30, 90)])
def test_the_eyes_and_the_nose_are_named(
    engine: InsightFaceEngine, left: int, top: int, size: int
) -> None:
    face = _one_face(engine, 480, 640, left, top, size)
    # SCRFD's order: eyes 0 and 1, nose 2, mouth corners 3 and 4 (the last is no nose).
    assert (face.left_eye, face.right_eye, face.nose) == face.landmarks[:3]
    assert face.left_eye[0] < face.right_eye[0]
    assert abs(face.left_eye[1] - face.right_eye[1]) < 3
    along, below = nose_place(face)
    assert 0.4 < along < 0.6 and 0.4 < below < 0.8, (along, below)
    _, mouth_corner = face.landmarks[3:]
    assert mouth_corner[1] > face.nose[1]
    # the distance code reads the eyes from the names, not from a landmark layout
    assert eye_gap_px(face) == pytest.approx(size * 35.24 / 112, abs=3)


def test_suppression_keeps_one_box_per_face(engine: InsightFaceEngine) -> None:
    # Hundreds of anchors at three strides score above the threshold for each face.
    image = blank_image(720, 1280)
    draw_face(image, 100, 80, 220, identity=1)
    draw_face(image, 700, 400, 260, identity=2)
    faces = engine.analyse(image)
    boxes = sorted((f.box.left, f.box.top, f.box.right, f.box.bottom) for f in faces)
    assert len(boxes) == 2
    for got, want in zip(boxes, [(100, 80, 320, 300), (700, 400, 960, 660)], strict=True):
        assert np.abs(np.subtract(got, want)).max() <= 4
    assert faces[0].score >= faces[1].score


def test_locate_then_embed_is_analyse(engine: InsightFaceEngine) -> None:
    image = blank_image(720, 1280)
    draw_face(image, 100, 80, 220, identity=1)
    draw_face(image, 700, 400, 260, identity=2)
    located = engine.locate(image, regions=[Box(90, 70, 330, 310)])  # regions are not used
    analysed = engine.analyse(image)
    assert [face.box for face in located] == [face.box for face in analysed]
    assert [face.landmarks for face in located] == [face.landmarks for face in analysed]
    for embedding, face in zip(engine.embed(image, located), analysed, strict=True):
        assert np.array_equal(embedding, face.embedding)
    assert engine.embed(image, []) == []


def test_embeddings_are_unit_vectors_that_tell_faces_apart(engine: InsightFaceEngine) -> None:
    first = _one_face(engine, 480, 640, 60, 50, 200, identity=1)
    again = _one_face(engine, 1080, 1920, 900, 500, 420, identity=1)  # other size and place
    other = _one_face(engine, 480, 640, 60, 50, 200, identity=2)
    for face in (first, again, other):
        assert face.embedding.shape == (512,) and face.embedding.dtype == np.float32
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-5)
        assert not face.embedding.flags.writeable
    same = float(np.linalg.norm(first.embedding - again.embedding))
    different = float(np.linalg.norm(first.embedding - other.embedding))
    assert same < 0.1 < engine.threshold < different


def test_faces_in_one_image_embed_as_in_their_own(tmp_path: Path) -> None:
    # A fixed batch of one makes the engine run the recogniser once per face.
    for batch in (None, 1):
        pack = write_pack(tmp_path / f"batch{batch}", arcface_batch=batch)
        with InsightFaceEngine(pack) as opened:
            image = blank_image(720, 1280)
            draw_face(image, 100, 80, 220, identity=1)
            draw_face(image, 700, 400, 260, identity=2)
            together = {f.box.left // 100: f.embedding for f in opened.analyse(image)}
            alone = _one_face(opened, 720, 1280, 700, 400, 260, identity=2)
            assert float(np.linalg.norm(together[7] - alone.embedding)) < 0.05


def test_model_version_follows_file_contents(tmp_path: Path, pack: Path) -> None:
    copy = Path(shutil.copytree(pack, tmp_path / "copy"))
    retrained = write_pack(tmp_path / "retrained", arcface_seed=1)
    versions = []
    for directory in (pack, copy, retrained):
        with InsightFaceEngine(directory) as opened:
            versions.append(opened.model_version)
    assert versions[0] == versions[1] != versions[2]
    assert versions[0].split("+")[0] == versions[2].split("+")[0]  # same detector


def test_outputs_listed_stride_by_stride_are_reordered(tmp_path: Path) -> None:
    pack = write_pack(tmp_path / "pack", scrfd_by_stride=True)
    with InsightFaceEngine(pack) as opened:
        face = _one_face(opened, 480, 640, 37, 250, 120)
    assert (face.box.left, face.box.top, face.box.right, face.box.bottom) == (37, 250, 157, 370)
