"""Recognition on real photos: enrol ``train/``, then name every face in ``test/`` and ``misc/``.

Measured with the dlib engine at its default threshold of 0.6 (distances are Euclidean between
128-d descriptors, each face against the nearest enrolled embedding of a person):

* genuine, the right person: at most 0.433 (rose_leslie in ``kit_with_rose.jpg``);
* impostor, anyone else: at least 0.683 (alex_lacamoire against obama). The third, smaller face
  in ``obama_and_biden.jpg`` belongs to nobody enrolled; its nearest is obama at 0.737.

So 0.6 leaves 0.17 on the genuine side and 0.08 on the impostor side.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.errors import ConfigError
from services.vision.dlib_engine import DlibEngine, DlibSettings
from services.vision.engine import Box, DetectedFace, Embedding
from services.vision.images import decode_image
from services.vision.matcher import Gallery
from tests.services.vision.support import Photos, nose_place, with_exif_orientation

# The people in each test photo, left to right by the left edge of their face; None is a face
# of someone not enrolled.
TEST_PHOTOS: dict[str, list[str | None]] = {
    "test/alex_lacamoire1.jpg": ["alex_lacamoire"],
    "test/johnsnow_test1.jpg": ["kit_harington"],
    "test/obama1.jpg": ["obama"],
    "test/kit_with_rose.jpg": ["rose_leslie", "kit_harington"],
    "test/obama_and_biden.jpg": ["biden", "obama", None],
}
MISC_PHOTOS: dict[str, list[str | None]] = {
    "misc/obama-240p.jpg": ["obama"],
    "misc/obama-480p.jpg": ["obama"],
    "misc/obama-720p.jpg": ["obama"],
    "misc/obama-1080p.jpg": ["obama"],
    "misc/obama_partial_face.jpg": ["obama"],
    "misc/32bit.png": ["obama"],
    "misc/two_people.jpg": ["obama", "biden"],
}


def left_to_right(faces: list[DetectedFace]) -> list[DetectedFace]:
    return sorted(faces, key=lambda face: face.box.left)


def nearest_by_person(enrolled: dict[str, list[Embedding]], face: DetectedFace) -> dict[str, float]:
    """Each person's nearest enrolled embedding to ``face``, as a distance."""
    return {
        person: min(float(np.linalg.norm(row - face.embedding)) for row in rows)
        for person, rows in enrolled.items()
    }


def test_every_train_photo_shows_one_face(photos: Photos, enrolled: Gallery) -> None:
    assert enrolled.subjects == {"alex_lacamoire", "biden", "kit_harington", "obama", "rose_leslie"}
    assert len(enrolled) == len(photos.listing("train")) == 9


@pytest.mark.parametrize("relative", sorted(TEST_PHOTOS | MISC_PHOTOS))
def test_every_face_is_named_right(photos: Photos, enrolled: Gallery, relative: str) -> None:
    expected = (TEST_PHOTOS | MISC_PHOTOS)[relative]
    faces = left_to_right(photos.faces(relative))
    assert [enrolled.match(face.embedding).name for face in faces] == expected


def test_genuine_and_impostor_distances_leave_a_margin(
    photos: Photos, enrolled: Gallery, engine: DlibEngine
) -> None:
    by_person: dict[str, list[Embedding]] = {}
    for relative in photos.listing("train"):
        (face,) = photos.faces(relative)
        by_person.setdefault(Path(relative).parent.name, []).append(face.embedding)
    genuine: list[float] = []
    impostor: list[float] = []
    for relative, people in TEST_PHOTOS.items():
        for face, person in zip(left_to_right(photos.faces(relative)), people, strict=True):
            distances = nearest_by_person(by_person, face)
            genuine += [distances.pop(person)] if person else []
            impostor += distances.values()
    print(f"max genuine {max(genuine):.3f}, min impostor {min(impostor):.3f}")
    assert max(genuine) < engine.threshold - 0.1 < engine.threshold < min(impostor) - 0.05
    assert max(genuine) == pytest.approx(0.433, abs=0.02)
    assert min(impostor) == pytest.approx(0.683, abs=0.02)


def test_the_stranger_in_obama_and_biden_stays_unknown(photos: Photos, enrolled: Gallery) -> None:
    stranger = left_to_right(photos.faces("test/obama_and_biden.jpg"))[2]
    match = enrolled.match(stranger.embedding)
    assert match.name is None
    assert 0.65 < match.distance < 0.8  # nearest is obama, at about 0.74


def test_boxes_and_landmarks_are_in_original_coordinates(photos: Photos) -> None:
    # obama_and_biden.jpg is 2000 px wide, so it is scanned at about half size.
    obama = left_to_right(photos.faces("test/obama_and_biden.jpg"))[1]
    assert abs(obama.box.left - 1141) <= 4 and abs(obama.box.top - 398) <= 4
    assert 195 <= obama.box.width <= 215
    assert len(obama.landmarks) == 5
    for x, y in obama.landmarks:
        assert obama.box.left <= x < obama.box.right and obama.box.top <= y < obama.box.bottom
    image_right_outer, image_right_inner, image_left_outer, image_left_inner, nose = (
        obama.landmarks
    )
    assert image_left_outer[0] < image_left_inner[0] < image_right_inner[0] < image_right_outer[0]
    assert nose[1] > max(point[1] for point in obama.landmarks[:4])
    assert obama.embedding.dtype == np.float32 and obama.embedding.shape == (128,)
    assert not obama.embedding.flags.writeable
    assert obama.score > 0


def test_the_eyes_and_the_nose_are_named(photos: Photos) -> None:
    faces = [face for folder in ("train", "test", "misc") for relative in photos.listing(folder)
             for face in photos.faces(relative)]
    assert len(faces) >= 20
    for face in faces:
        right_outer, right_inner, left_outer, left_inner, nose = face.landmarks
        assert face.left_eye[0] < face.right_eye[0]
        assert left_outer[0] < face.left_eye[0] < left_inner[0]
        assert right_inner[0] < face.right_eye[0] < right_outer[0]
        assert face.nose == nose
        along, below = nose_place(face)  # between the eyes and below them
        assert 0.25 < along < 0.75 and 0.4 < below < 1.2, (along, below)


def test_a_face_cut_by_the_frame_keeps_its_detected_box(photos: Photos) -> None:
    (face,) = photos.faces("misc/obama_partial_face.jpg")
    assert face.box.left < 0
    height, width = photos.image("misc/obama_partial_face.jpg").shape[:2]
    assert face.box.clipped(width, height) == Box(0, face.box.top, face.box.right, face.box.bottom)


def test_small_images_are_upsampled_to_find_small_faces(engine: DlibEngine, photos: Photos) -> None:
    # The 240p frame's face is about 63 px, under what the detector finds without upsampling.
    image = photos.image("misc/obama-240p.jpg")
    assert len(engine.analyse(image)) == 1
    with DlibEngine(DlibSettings(detect_max_side=320)) as coarse:
        assert coarse.analyse(image) == []


def test_every_engine_of_a_process_has_a_detector_of_its_own(
    engine: DlibEngine, photos: Photos,
) -> None:
    """Engines opened after the first take their detector from a copy of the first one's
    (services/vision/dlib_engine.py): a separate object, finding exactly the same faces."""
    image = photos.image("test/obama_and_biden.jpg")
    with DlibEngine() as second, DlibEngine() as third:
        detectors = {id(e._models.detector) for e in (engine, second, third)
                     if e._models is not None}
        assert len(detectors) == 3
        found = [e.analyse(image) for e in (engine, second, third)]
    assert len(found[0]) == 3
    for faces in found[1:]:
        assert [(f.box, f.landmarks) for f in faces] == [(f.box, f.landmarks) for f in found[0]]
        for face, first in zip(faces, found[0], strict=True):
            assert np.array_equal(face.embedding, first.embedding)


def test_no_faces_in_a_blank_image(engine: DlibEngine) -> None:
    assert engine.analyse(np.full((480, 640, 3), 200, np.uint8)) == []


def test_engine_refuses_other_arrays_and_use_before_open(engine: DlibEngine) -> None:
    with pytest.raises(ValueError, match="uint8"):
        engine.analyse(np.zeros((10, 10), np.uint8))
    with pytest.raises(ValueError, match="uint8"):
        engine.analyse(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(RuntimeError, match="not open"):
        DlibEngine().analyse(np.zeros((10, 10, 3), np.uint8))


def test_only_the_five_point_model_is_loaded(engine: DlibEngine) -> None:
    shape, recognition = engine.model_paths
    assert shape.name == "shape_predictor_5_face_landmarks.dat"
    assert recognition.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert "68" not in engine.model_version
    assert (engine.name, engine.dimension, engine.threshold) == ("dlib", 128, 0.6)


def test_a_phone_portrait_stored_sideways_is_turned_upright(
    photos: Photos, engine: DlibEngine, enrolled: Gallery
) -> None:
    # Phones store the sensor's pixels and an EXIF tag saying how to turn them; 6 means "turn
    # 90 degrees clockwise to view". The HOG detector finds no face lying on its side.
    upright = photos.image("test/obama1.jpg")
    sideways = np.ascontiguousarray(np.rot90(upright))  # turned 90 degrees anticlockwise
    assert engine.analyse(sideways) == []
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(sideways, cv2.COLOR_RGB2BGR))
    assert ok
    image = decode_image(with_exif_orientation(jpeg.tobytes(), 6))
    assert image.shape == upright.shape
    (face,) = engine.analyse(image)
    assert enrolled.match(face.embedding).name == "obama"


def test_bad_settings_fail_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="missing"), DlibEngine(DlibSettings(models_dir=tmp_path)):
        pass
    with pytest.raises(ConfigError, match="detect_max_side"):
        DlibSettings(detect_max_side=100)
    with pytest.raises(ConfigError, match="threshold"):
        DlibSettings(threshold=0)


def test_importing_the_engine_loads_no_model() -> None:
    code = (
        "import sys, services.vision.dlib_engine;"
        "print('dlib' in sys.modules, 'face_recognition_models' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "False"]
