"""Distance from the eye gap: real photos at several sizes, and a face projected by hand."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from schemas.errors import ConfigError
from services.vision.distance import (
    DEFAULT_CAMERA,
    MEAN_IPD_CM,
    CameraProfile,
    CameraProfiles,
    estimate_distance_cm,
)
from services.vision.dlib_engine import DlibEngine
from services.vision.engine import Box, DetectedFace
from tests.services.vision.support import Photos

FOCAL_PX = DEFAULT_CAMERA.focal_px


def only_face(engine: DlibEngine, image: np.ndarray) -> DetectedFace:
    (face,) = engine.analyse(image)
    return face


@pytest.mark.parametrize(
    "relative", ["misc/obama-1080p.jpg", "train/biden/biden2.jpg", "test/obama1.jpg"]
)
def test_half_size_photo_reads_twice_as_far(
    photos: Photos, engine: DlibEngine, relative: str
) -> None:
    image = photos.image(relative)
    (face,) = photos.faces(relative)
    half = cv2.resize(
        image, (image.shape[1] // 2, image.shape[0] // 2), interpolation=cv2.INTER_AREA
    )
    near = estimate_distance_cm(face, FOCAL_PX)
    far = estimate_distance_cm(only_face(engine, np.ascontiguousarray(half)), FOCAL_PX)
    assert far / near == pytest.approx(2.0, rel=0.05)


def test_one_frame_at_three_resolutions_scales_with_the_width(photos: Photos) -> None:
    """The misc/ photos are one frame saved at several sizes; a camera with a fixed focal length
    would see each as the face at ``1080 / height`` times the 1080p distance."""
    reference = estimate_distance_cm(photos.faces("misc/obama-1080p.jpg")[0], FOCAL_PX)
    for height in (480, 720):
        (face,) = photos.faces(f"misc/obama-{height}p.jpg")
        expected = reference * 1080 / height
        assert estimate_distance_cm(face, FOCAL_PX) == pytest.approx(expected, rel=0.05)


def project(point: tuple[float, float, float], focal_px: float) -> tuple[float, float]:
    """A camera-space point in cm through a pinhole at the origin, principal point 960, 540."""
    x, y, z = point
    return 960 + focal_px * x / z, 540 + focal_px * y / z


def synthetic_face(distance_cm: float, yaw_deg: float, roll_deg: float) -> DetectedFace:
    """The eyes and nose of a head ``distance_cm`` in front of the camera, a little off-axis.

    The eye centres are 6.3 cm apart; the nose base is 4.5 cm below their midpoint and 2 cm
    nearer the camera. The head turns by ``yaw_deg`` about its vertical axis and tilts by
    ``roll_deg`` in the image plane.
    """
    half_ipd = MEAN_IPD_CM / 2
    # Head coordinates, x towards the image's right: the image's left eye, right eye, nose.
    head = [(-half_ipd, 0.0, 0.0), (half_ipd, 0.0, 0.0), (0.0, 4.5, -2.0)]
    yaw, roll = math.radians(yaw_deg), math.radians(roll_deg)
    centre = (8.0, -5.0, distance_cm)
    landmarks = []
    for x, y, z in head:
        x, z = x * math.cos(yaw) + z * math.sin(yaw), -x * math.sin(yaw) + z * math.cos(yaw)
        x, y = x * math.cos(roll) - y * math.sin(roll), x * math.sin(roll) + y * math.cos(roll)
        landmarks.append(project((x + centre[0], y + centre[1], z + centre[2]), FOCAL_PX))
    xs, ys = [p[0] for p in landmarks], [p[1] for p in landmarks]
    box = Box(round(min(xs)) - 20, round(min(ys)) - 30, round(max(xs)) + 20, round(max(ys)) + 20)
    left_eye, right_eye, nose = landmarks
    return DetectedFace(box, tuple(landmarks), np.zeros(128, dtype=np.float32), 1.0,
                        left_eye=left_eye, right_eye=right_eye, nose=nose)


@pytest.mark.parametrize("distance_cm", [40.0, 80.0, 150.0])
@pytest.mark.parametrize(("yaw_deg", "roll_deg"), [(0.0, 0.0), (15.0, 10.0), (-10.0, -15.0)])
def test_projected_face_reads_its_distance(
    distance_cm: float, yaw_deg: float, roll_deg: float
) -> None:
    face = synthetic_face(distance_cm, yaw_deg, roll_deg)
    assert estimate_distance_cm(face, FOCAL_PX) == pytest.approx(distance_cm, rel=0.10)


def test_a_frontal_projected_face_reads_exactly() -> None:
    face = synthetic_face(65.0, 0.0, 30.0)
    assert estimate_distance_cm(face, FOCAL_PX) == pytest.approx(65.0, rel=1e-6)


def test_profiles_fall_back_to_the_default() -> None:
    wide = CameraProfile.from_field_of_view(1280, 90.0)
    profiles = CameraProfiles({"mh-32": wide})
    assert wide.focal_px == pytest.approx(640.0)
    assert profiles.for_model("mh-32") is wide
    assert profiles.for_model("mh-unknown") is DEFAULT_CAMERA
    assert profiles.for_model(None) is DEFAULT_CAMERA
    assert DEFAULT_CAMERA.focal_px == pytest.approx(1371, abs=1)


def test_profiles_are_not_changed_by_the_callers_dict() -> None:
    given = {"mh-32": CameraProfile(900.0)}
    profiles = CameraProfiles(given)
    given["mh-32"] = CameraProfile(100.0)
    assert profiles.for_model("mh-32").focal_px == 900.0


@pytest.mark.parametrize("focal_px", [0.0, -5.0, math.nan, math.inf])
def test_a_bad_focal_length_is_a_config_error(focal_px: float) -> None:
    with pytest.raises(ConfigError):
        CameraProfile(focal_px)


def test_a_bad_field_of_view_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        CameraProfile.from_field_of_view(1920, 180.0)


def test_coinciding_eyes_tell_no_distance() -> None:
    face = DetectedFace(Box(0, 0, 10, 10), (), np.zeros(4, np.float32), 1.0,
                        left_eye=(5.0, 4.0), right_eye=(5.0, 4.0), nose=(5.0, 7.0))
    with pytest.raises(ValueError, match="coincide"):
        estimate_distance_cm(face, FOCAL_PX)
