"""Photo attacks made from the shared stills: a print held up to a mirror's camera.

Each sequence is one still, cropped around its face as a printed portrait would be, placed on a
plane in front of a pinhole camera (640 x 360, focal length 600 px, about a 56 degree view) and
moved from one pose to another over the sequence, as a hand tilts and moves a print: yaw
and pitch of the print up to :data:`MAX_TILT_DEG`, roll up to 15, at a distance that makes the
eye gap 30 to 90 px, with a little hand shake on every frame. Each frame is then blurred,
given sensor noise and re-compressed as JPEG. Every frame is the still warped by one
homography, so whatever its landmarks do, they do as points of one plane. Deterministic for a seed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from services.vision.engine import DetectedFace, LocatedFace, RGBImage
from services.vision.images import decode_image

FRAME_SIZE = (640, 360)
FOCAL_PX = 600.0
MAX_TILT_DEG = 30.0


@dataclass(frozen=True)
class Still:
    """A still and its face: the crop a print would show, and its eye gap in pixels."""

    name: str
    image: RGBImage
    eye_gap: float


def print_of(name: str, image: RGBImage, face: LocatedFace | DetectedFace) -> Still:
    """The part of ``image`` a printed portrait of ``face`` shows: 2.6 boxes wide, 3.2 high."""
    box = face.box
    cx, cy = box.left + box.width / 2, box.top + box.height / 2
    half_w, half_h = 1.3 * box.width, 1.6 * box.height
    height, width = image.shape[:2]
    left, right = max(0, int(cx - half_w)), min(width, int(cx + half_w))
    top, bottom = max(0, int(cy - half_h)), min(height, int(cy + half_h))
    gap = math.dist(face.left_eye, face.right_eye)
    return Still(name, np.ascontiguousarray(image[top:bottom, left:right]), gap)


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    cy, sy, cp, sp, cr, sr = (math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch),
                              math.cos(roll), math.sin(roll))
    about_y = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    about_x = np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])
    about_z = np.array([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]])
    rotation: np.ndarray = about_z @ about_x @ about_y
    return rotation


def homography(still: Still, pose: np.ndarray) -> np.ndarray:
    """The homography that takes the still's pixels to the frame for ``pose`` (yaw, pitch,
    roll in radians; x, y in frame pixels at the print's distance; the eye gap in px the print
    would show face on)."""
    yaw, pitch, roll, x, y, gap = pose
    height, width = still.image.shape[:2]
    scale = gap / still.eye_gap  # frame px per still px, face on
    distance = FOCAL_PX  # the plane's units are frame px at this distance
    centre = np.array([[scale, 0, -scale * width / 2], [0, scale, -scale * height / 2],
                       [0, 0, 1]])  # still px -> plane units, centred
    rotation = _rotation(yaw, pitch, roll)
    extrinsic = np.column_stack([rotation[:, 0], rotation[:, 1], [x, y, distance]])
    camera = np.array([[FOCAL_PX, 0, FRAME_SIZE[0] / 2], [0, FOCAL_PX, FRAME_SIZE[1] / 2],
                       [0, 0, 1]])
    warp: np.ndarray = camera @ extrinsic @ centre
    return warp


def _pose(rng: np.random.Generator, tilt: float) -> np.ndarray:
    return np.array([rng.uniform(-tilt, tilt), rng.uniform(-tilt, tilt), rng.uniform(-0.26, 0.26),
                     rng.uniform(-120, 120), rng.uniform(-50, 50), rng.uniform(30, 90)])


def frame(still: Still, pose: np.ndarray, rng: np.random.Generator) -> bytes:
    """One frame of the print at ``pose``: warped, blurred, noisy, JPEG."""
    warped = cv2.warpPerspective(still.image, homography(still, pose), FRAME_SIZE,
                                 flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    sigma = rng.uniform(0, 1.5)
    if sigma > 0.3:
        warped = cv2.GaussianBlur(warped, (0, 0), sigma)
    noisy = warped.astype(np.float32) + rng.normal(0, rng.uniform(0, 6), warped.shape)
    bgr = cv2.cvtColor(np.clip(noisy, 0, 255).astype(np.uint8), cv2.COLOR_RGB2BGR)
    ok, jpeg = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(40, 91))])
    assert ok
    return jpeg.tobytes()


def attack(still: Still, frames: int, rng: np.random.Generator, tilt: float) -> list[bytes]:
    """``frames`` JPEG frames of ``still`` moved from one random pose to another, yaw and pitch
    up to ``tilt`` radians."""
    start, end = _pose(rng, tilt), _pose(rng, tilt)
    shake = np.array([0.02, 0.02, 0.01, 2.0, 2.0, 0.5])
    return [frame(still, start + (end - start) * i / (frames - 1)
                  + rng.normal(0, 1, 6) * shake, rng) for i in range(frames)]


def attacks(stills: Sequence[Still], count: int, frames: int, seed: int,
            tilt: float = math.radians(MAX_TILT_DEG)) -> Iterator[tuple[str, list[RGBImage]]]:
    """``count`` attack sequences, the stills taking turns, decoded as the service decodes."""
    rng = np.random.default_rng(seed)
    for number in range(count):
        still = stills[number % len(stills)]
        yield still.name, [decode_image(jpeg) for jpeg in attack(still, frames, rng, tilt)]
