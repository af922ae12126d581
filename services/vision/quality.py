"""Is a detected face good enough to enrol? Three cheap measurements on the face crop.

* **size**: the shorter side of the detected box, in pixels of the original image;
* **brightness**: the mean luma (BT.601, 0-255) of the crop;
* **sharpness**: the variance of the Laplacian of the crop after it is resized to 128x128 and
  scaled so its mean luma is 128. The resize makes the figure independent of the face's
  resolution, the scaling makes it independent of exposure: darkening a photo scales the
  Laplacian and the mean alike, so a dark but sharp face reads as dark, not as blurred.

The default thresholds were calibrated on the 25 faces dlib finds in the shared test photos
(``train/``, ``test/``, ``misc/``):

================  =====================  ==========================================  =========
measurement       real photos (minimum)  degraded (maximum)                          threshold
================  =====================  ==========================================  =========
size              63 px (240p video)     36 px (photo shrunk to a 36 px face box)        50 px
brightness        83 (a face in shade)   27 (every pixel times 0.15)                        45
sharpness         118 (a 73 px face)     14 (Gaussian blur, sigma 2% of the box side)       40
================  =====================  ==========================================  =========

Each threshold sits near the geometric mean of its row's two figures. Darkened faces keep a
sharpness of 155 or more, so they are refused as dark only.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np

from schemas.vision import VisionError
from services.vision.engine import Box, RGBImage

NORMALISED_SIDE = 128
NORMALISED_MEAN = 128.0


class QualityCode(StrEnum):
    """The quality codes of :class:`VisionError`."""

    TOO_SMALL = VisionError.FACE_TOO_SMALL.value
    BLURRED = VisionError.FACE_BLURRED.value
    TOO_DARK = VisionError.FACE_TOO_DARK.value


@dataclass(frozen=True)
class QualityThresholds:
    min_face_px: int = 50
    min_sharpness: float = 40.0
    min_brightness: float = 45.0


@dataclass(frozen=True)
class FaceMeasurements:
    side: int
    brightness: float
    sharpness: float


@dataclass(frozen=True)
class QualityIssue:
    """One reason to refuse a face, with a message a person in front of the mirror can act on."""

    code: QualityCode
    message: str


def measure_face(image: RGBImage, box: Box) -> FaceMeasurements:
    """Measure the face in ``box``; raises ``ValueError`` if the box lies outside the image."""
    height, width = image.shape[:2]
    inside = box.clipped(width, height)
    if inside.width == 0 or inside.height == 0:
        raise ValueError(f"{box} lies outside the {width}x{height} image")
    crop = image[inside.top : inside.bottom, inside.left : inside.right]
    grey = cv2.cvtColor(np.ascontiguousarray(crop), cv2.COLOR_RGB2GRAY)
    shrinking = min(grey.shape) >= NORMALISED_SIDE
    resized = cv2.resize(
        grey,
        (NORMALISED_SIDE, NORMALISED_SIDE),
        interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR,
    ).astype(np.float32)
    brightness = float(resized.mean())
    if brightness > 0:
        resized *= NORMALISED_MEAN / brightness
    sharpness = float(cv2.Laplacian(resized, cv2.CV_32F).var())
    return FaceMeasurements(min(box.width, box.height), brightness, sharpness)


def check_face(
    image: RGBImage, box: Box, thresholds: QualityThresholds | None = None
) -> list[QualityIssue]:
    """Every way the face in ``box`` falls short; an empty list means it is good to enrol."""
    limits = thresholds or QualityThresholds()
    found = measure_face(image, box)
    issues = []
    if found.side < limits.min_face_px:
        issues.append(
            QualityIssue(
                QualityCode.TOO_SMALL,
                f"the face is {found.side} px across and needs at least {limits.min_face_px} px:"
                " come closer to the camera or use a larger photo",
            )
        )
    if found.sharpness < limits.min_sharpness:
        issues.append(
            QualityIssue(
                QualityCode.BLURRED,
                f"the face is blurred (sharpness {found.sharpness:.0f}, needs"
                f" {limits.min_sharpness:g}): hold still and check the camera is in focus",
            )
        )
    if found.brightness < limits.min_brightness:
        issues.append(
            QualityIssue(
                QualityCode.TOO_DARK,
                f"the face is too dark (brightness {found.brightness:.0f} of 255, needs"
                f" {limits.min_brightness:g}): add light in front of the face",
            )
        )
    return issues
