"""How far a face is from the mirror's camera, from the gap between its eyes.

Through a pinhole camera an object of width ``W`` cm at depth ``Z`` cm spans ``f * W / Z``
pixels, ``f`` being the focal length in pixels. The width used is the interpupillary distance
(IPD), which varies little between adults, so ``Z = f * IPD / ipd_px``.

* **IPD**: 6.3 cm, the adult mean in Dodgson, "Variation and extrema of human interpupillary
  distance" (Proc. SPIE 5291, 2004), from about 4,000 adults; the standard deviation is about
  0.36 cm, so one person's figure may be about 6% off from the mean before anything else.
* **Pupils**: the eye centres every engine gives (``DetectedFace.left_eye`` and ``right_eye``;
  dlib's are the midpoints of each eye's corners, where the pupil sits when the person looks
  straight ahead, as someone facing a mirror does).
* **Focal length**: a property of the mirror's camera *at the resolution it sends*, so it is
  configured per mirror model code as a :class:`CameraProfile` and never scaled with the image:
  the same camera showing a face at half the pixel size sees it twice as far away. A frame that
  is resized before it is analysed must be analysed with the focal length scaled alike.

Head yaw shortens the eyes' projected gap by the cosine of the angle (30 degrees reads 15% too
far); roll does not matter, as the gap is measured along the eye line. See ``docs/vision.md``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from schemas.errors import ConfigError
from services.vision.engine import DetectedFace

MEAN_IPD_CM = 6.3
"""Mean adult interpupillary distance (Dodgson 2004), in centimetres."""

@dataclass(frozen=True)
class CameraProfile:
    """A mirror camera's focal length in pixels of the frames it sends.

    Build one from a datasheet's horizontal field of view with :meth:`from_field_of_view`, or
    measure it: put a face at a known distance ``Z`` and set ``focal_px = ipd_px * Z / 6.3``.
    """

    focal_px: float

    def __post_init__(self) -> None:
        if not (math.isfinite(self.focal_px) and self.focal_px > 0):
            raise ConfigError(f"a camera's focal length must be positive, not {self.focal_px}")

    @classmethod
    def from_field_of_view(cls, frame_width: int, horizontal_fov_deg: float) -> CameraProfile:
        """The focal length of a lens that spans ``horizontal_fov_deg`` over ``frame_width`` px."""
        if frame_width <= 0 or not 0 < horizontal_fov_deg < 180:
            raise ConfigError(
                f"no camera is {frame_width} px wide with a {horizontal_fov_deg} degree view"
            )
        half_angle = math.radians(horizontal_fov_deg) / 2
        return cls(frame_width / 2 / math.tan(half_angle))


DEFAULT_CAMERA = CameraProfile.from_field_of_view(1920, 70.0)
"""A 1080p webcam with a 78 degree diagonal (70 degree horizontal) view, the usual USB camera
behind a smart mirror's glass (e.g. a Logitech C920): about 1371 px."""


@dataclass(frozen=True)
class CameraProfiles:
    """Camera profiles by mirror model code, with ``default`` for any code not listed."""

    by_model: Mapping[str, CameraProfile] = field(default_factory=dict)
    default: CameraProfile = DEFAULT_CAMERA

    def __post_init__(self) -> None:
        # A read-only copy, so a caller's later edits to its dict cannot change a frozen value.
        object.__setattr__(self, "by_model", MappingProxyType(dict(self.by_model)))

    def for_model(self, model_code: str | None) -> CameraProfile:
        if model_code is None:
            return self.default
        return self.by_model.get(model_code, self.default)


def eye_gap_px(face: DetectedFace) -> float:
    """The distance between the two eye centres in pixels: the projected IPD."""
    return math.dist(face.left_eye, face.right_eye)


def estimate_distance_cm(face: DetectedFace, focal_px: float, ipd_cm: float = MEAN_IPD_CM) -> float:
    """The camera-to-face distance in centimetres, ``focal_px * ipd_cm / eye_gap_px(face)``.

    ``focal_px`` must belong to the resolution of the image the face was found in (see the
    module docstring). Raises ``ValueError`` if the eyes coincide.
    """
    gap = eye_gap_px(face)
    if gap <= 0:
        raise ValueError("the eye centres coincide; no distance can be estimated")
    return focal_px * ipd_cm / gap
