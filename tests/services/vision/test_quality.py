"""Quality checks on real faces: every shared photo passes, degraded copies of it fail.

The calibration figures behind the default thresholds are in ``services/vision/quality.py``.
"""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.vision.engine import Box
from services.vision.quality import (
    QualityCode,
    QualityThresholds,
    check_face,
    measure_face,
)
from tests.services.vision.support import Photos

FOLDERS = ("train", "test", "misc")


def every_face(photos: Photos) -> list[tuple[str, Box]]:
    return [
        (relative, face.box)
        for folder in FOLDERS
        for relative in photos.listing(folder)
        for face in photos.faces(relative)
    ]


def codes(image: np.ndarray, box: Box) -> set[QualityCode]:
    return {issue.code for issue in check_face(image, box)}


def test_every_real_face_passes(photos: Photos) -> None:
    faces = every_face(photos)
    assert len(faces) == 25
    for relative, box in faces:
        assert check_face(photos.image(relative), box) == [], relative


def test_blurred_faces_fail(photos: Photos) -> None:
    for relative, box in every_face(photos):
        sigma = min(box.width, box.height) / 50
        blurred = cv2.GaussianBlur(photos.image(relative), (0, 0), sigma)
        assert codes(blurred, box) == {QualityCode.BLURRED}, relative


def test_dark_faces_fail_as_dark_only(photos: Photos) -> None:
    for relative, box in every_face(photos):
        dark = np.round(photos.image(relative) * 0.15).astype(np.uint8)
        assert codes(dark, box) == {QualityCode.TOO_DARK}, relative


def test_tiny_faces_fail(photos: Photos) -> None:
    for relative, box in every_face(photos):
        scale = 36 / min(box.width, box.height)
        small = cv2.resize(photos.image(relative), None, fx=scale, fy=scale,
                           interpolation=cv2.INTER_AREA)
        tiny = Box(*(round(side * scale) for side in (box.left, box.top, box.right, box.bottom)))
        assert QualityCode.TOO_SMALL in codes(small, tiny), relative


def test_a_tiny_face_found_by_the_engine_is_too_small(photos: Photos) -> None:
    image = photos.image("test/obama1.jpg")
    small = cv2.resize(image, None, fx=0.12, fy=0.12, interpolation=cv2.INTER_AREA)
    (face,) = photos.engine.analyse(np.ascontiguousarray(small))
    assert face.box.width < 50
    assert QualityCode.TOO_SMALL in codes(small, face.box)


def test_messages_say_what_to_do(photos: Photos) -> None:
    (face,) = photos.faces("test/obama1.jpg")
    dark = np.round(photos.image("test/obama1.jpg") * 0.15).astype(np.uint8)
    (issue,) = check_face(dark, face.box)
    assert issue.code == "face_too_dark"
    assert "add light" in issue.message and "brightness 17" in issue.message


def test_thresholds_are_configurable(photos: Photos) -> None:
    (face,) = photos.faces("test/obama1.jpg")
    strict = QualityThresholds(min_face_px=400)
    issues = check_face(photos.image("test/obama1.jpg"), face.box, strict)
    assert [issue.code for issue in issues] == [QualityCode.TOO_SMALL]


def test_measurements_ignore_exposure_for_sharpness(photos: Photos) -> None:
    (face,) = photos.faces("test/obama1.jpg")
    image = photos.image("test/obama1.jpg")
    bright = measure_face(image, face.box)
    dim = measure_face(np.round(image * 0.5).astype(np.uint8), face.box)
    assert dim.brightness == pytest.approx(bright.brightness / 2, rel=0.02)
    assert dim.sharpness == pytest.approx(bright.sharpness, rel=0.1)


def test_a_box_outside_the_image_is_an_error() -> None:
    with pytest.raises(ValueError, match="outside"):
        measure_face(np.zeros((10, 10, 3), np.uint8), Box(20, 20, 30, 30))
