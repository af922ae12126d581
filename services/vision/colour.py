"""Personal colour: a face's skin sorted into one of the four seasons of colour analysis.

Seasonal colour analysis crosses two questions: is the skin's undertone **warm** (yellow,
golden) or **cool** (pink, bluish), and is the colouring **light** or **deep**?

========  ======  =====
season    tone    depth
========  ======  =====
spring    warm    light
summer    cool    light
autumn    warm    deep
winter    cool    deep
========  ======  =====

How a face is measured, by :func:`analyse_tone`:

1. **Regions.** Three patches placed from the eye centres and the nose (which every engine
   names on the face) and sized by the gap ``e`` between the eye centres: a cheek under each
   eye (0.4 to 0.7 ``e`` below the eye centre and 0.3 ``e`` wide, which clears the lower lid
   and the side of the nose), and the forehead (0.5 to 0.8 ``e`` above the eyes' midpoint,
   ``e`` wide, above the brows). Patches are axis-aligned around centres that follow the
   head's roll, and clipped to the image.
2. **White balance.** A camera under warm indoor light makes every face yellower; measured
   as is, everyone would be an autumn. The light's colour is estimated by grey edge (van de
   Weijer, Gevers and Gijsenij, 2007): the mean gradient magnitude of each linear RGB channel,
   over a copy at most 512 px long, *outside* the face box. Edges are dominated less by one
   large coloured surface (a painted wall, a jumper) than the plain channel means of grey
   world are, and leaving the face out keeps the skin's own colour from pulling the estimate:
   a yellower face in the same room reads warmer; the same face under a yellower light reads
   much less so. The skin is corrected by von Kries gains (clamped to 0.5..2) taken only half
   way (degree of adaptation 0.5), because the camera's own auto white balance has usually done
   most of the work already, and a full correction adds the estimator's own errors on top: on
   the 25 faces of the shared test photos, the hue angles' 10th to 90th percentiles span 30..53
   degrees uncorrected, 33..58 half way and 27..68 fully corrected. With under 5% of the frame
   outside the face box, or a flat background, no correction is made.
3. **CIELAB.** The corrected pixels go to CIELAB (D65), where ``L*`` is perceived lightness
   (0..100) and ``a*`` (green to red), ``b*`` (blue to yellow) carry the colour.
4. **Robust statistics.** Crushed (``L* < 5``) and clipped (``L* > 98``) pixels are dropped,
   then the darkest and brightest 15% by ``L*`` (shadows under the cheekbones, stray hair,
   specular shine); what is left in each region is summarised by its per-channel median, and
   the face by the median of the regions' medians, so that the forehead, the largest patch,
   does not outvote the cheeks, and one region spoilt by a fringe or a beard is outvoted.
5. **Features.** Warmth is the hue angle ``h = atan2(b*, a*)``: skin lies between red (0
   degrees) and yellow (90); yellower skin has a larger angle. Depth is the Individual Typology
   Angle ``ITA = atan2(L* - 50, max(b*, 0))`` dermatology uses to grade skin from very light
   (over 55 degrees) to dark (under -30); it falls as skin darkens.

``warmth_score`` is ``h`` minus :attr:`ToneThresholds.warm_hue_deg` and ``depth_score`` is
:attr:`ToneThresholds.deep_ita_deg` minus ``ITA``, both in degrees, so a positive score means
warm and deep respectively.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from services.vision.engine import Box, DetectedFace, RGBImage

FloatArray = npt.NDArray[np.float32]

MIN_L, MAX_L = 5.0, 98.0
TRIM_FRACTION = 0.15
MIN_BACKGROUND_FRACTION = 0.05
GAIN_LIMITS = (0.5, 2.0)
ADAPTATION = 0.5
ESTIMATE_SIDE = 512


class Season(StrEnum):
    SPRING = "spring"
    SUMMER = "summer"
    AUTUMN = "autumn"
    WINTER = "winter"


class Undertone(StrEnum):
    WARM = "warm"
    COOL = "cool"


class Depth(StrEnum):
    LIGHT = "light"
    DEEP = "deep"


_SEASONS = {
    (Undertone.WARM, Depth.LIGHT): Season.SPRING,
    (Undertone.COOL, Depth.LIGHT): Season.SUMMER,
    (Undertone.WARM, Depth.DEEP): Season.AUTUMN,
    (Undertone.COOL, Depth.DEEP): Season.WINTER,
}


@dataclass(frozen=True)
class ToneThresholds:
    """Where warm meets cool (a hue angle) and light meets deep (an ITA), in degrees.

    ITA 28 degrees is the border between dermatology's "intermediate" and "tan" skin. The hue
    border of 52 degrees is the median hue angle of the 25 white-balanced faces in the shared
    test photos (10th to 90th percentile: 33 to 58 degrees); see ``docs/vision.md``.
    """

    warm_hue_deg: float = 52.0
    deep_ita_deg: float = 28.0


@dataclass(frozen=True)
class ToneResult:
    """A face's season with the two judgements behind it and the scores they came from.

    ``lab_median`` is the skin's median ``(L*, a*, b*)`` after white balance.
    """

    season: Season
    undertone: Undertone
    depth: Depth
    warmth_score: float
    depth_score: float
    lab_median: tuple[float, float, float]

    @property
    def tone(self) -> str:
        """What the HTTP reply's ``tone`` field carries: the season's name, e.g. ``"spring"``."""
        return self.season.value


def skin_regions(face: DetectedFace, width: int, height: int) -> list[Box]:
    """The left cheek, right cheek and forehead patches, clipped to the image; empty ones left
    out (all of them when the eyes coincide)."""
    left, right, nose = face.left_eye, face.right_eye, face.nose
    gap = math.dist(left, right)
    if gap <= 0:
        return []
    # Unit vectors along the eye line and towards the chin (rotated so it points at the nose).
    across = ((right[0] - left[0]) / gap, (right[1] - left[1]) / gap)
    down = (-across[1], across[0])
    middle = ((left[0] + right[0]) / 2, (left[1] + right[1]) / 2)
    if (nose[0] - middle[0]) * down[0] + (nose[1] - middle[1]) * down[1] < 0:
        down = (-down[0], -down[1])

    def patch(origin: tuple[float, float], offset: float, half_w: float, half_h: float) -> Box:
        cx, cy = origin[0] + down[0] * offset * gap, origin[1] + down[1] * offset * gap
        return Box(
            round(cx - half_w * gap),
            round(cy - half_h * gap),
            round(cx + half_w * gap),
            round(cy + half_h * gap),
        ).clipped(width, height)

    boxes = [
        patch(left, 0.55, 0.15, 0.15),
        patch(right, 0.55, 0.15, 0.15),
        patch(middle, -0.65, 0.5, 0.15),
    ]
    return [box for box in boxes if box.width > 0 and box.height > 0]


def analyse_tone(
    image: RGBImage, face: DetectedFace, thresholds: ToneThresholds | None = None
) -> ToneResult:
    """Classify the skin of ``face`` as the module docstring describes.

    Deterministic: the same pixels and landmarks give the same result. Raises ``ValueError``
    if the skin patches fall outside the image or hold no usable pixel.
    """
    limits = thresholds or ToneThresholds()
    height, width = image.shape[:2]
    regions = skin_regions(face, width, height)
    if not regions:
        raise ValueError("the face's skin regions lie outside the image")
    gains = _white_balance_gains(image, face.box)
    medians = []
    for box in regions:
        median = _robust_median(_linear_to_lab(_to_linear(_pixels(image, box)) * gains))
        if median is not None:
            medians.append(median)
    if not medians:
        raise ValueError("the face's skin is all shadow or highlight")
    # The median of the regions' medians: one region spoilt by a fringe or a beard cannot move it.
    l_star, a_star, b_star = (float(value) for value in np.median(np.stack(medians), axis=0))

    hue = math.degrees(math.atan2(b_star, a_star))
    # ITA is defined for yellowish skin (b* > 0); clamping keeps it within -90..90 degrees for a
    # near-grey patch, where a negative b* would otherwise wrap it round to the far side.
    ita = math.degrees(math.atan2(l_star - 50, max(b_star, 0.0)))
    warmth_score = hue - limits.warm_hue_deg
    depth_score = limits.deep_ita_deg - ita
    undertone = Undertone.WARM if warmth_score >= 0 else Undertone.COOL
    depth = Depth.DEEP if depth_score >= 0 else Depth.LIGHT
    return ToneResult(
        season=_SEASONS[undertone, depth],
        undertone=undertone,
        depth=depth,
        warmth_score=warmth_score,
        depth_score=depth_score,
        lab_median=(l_star, a_star, b_star),
    )


def _robust_median(lab: FloatArray) -> FloatArray | None:
    """The per-channel median of one region's pixels once outliers by lightness are dropped."""
    lightness = lab[:, 0]
    lab = lab[(lightness >= MIN_L) & (lightness <= MAX_L)]
    if len(lab) == 0:
        return None
    low, high = np.quantile(lab[:, 0], [TRIM_FRACTION, 1 - TRIM_FRACTION])
    kept = lab[(lab[:, 0] >= low) & (lab[:, 0] <= high)]
    return np.asarray(np.median(kept, axis=0), dtype=np.float32)


def _pixels(image: RGBImage, box: Box) -> FloatArray:
    """The box's pixels as an ``(n, 3)`` float32 array of sRGB values in 0..1."""
    crop = image[box.top : box.bottom, box.left : box.right].reshape(-1, 3)
    return crop.astype(np.float32) / np.float32(255)


def _to_linear(srgb: FloatArray) -> FloatArray:
    """Undo the sRGB transfer curve (IEC 61966-2-1)."""
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4).astype(
        np.float32
    )


def _linear_to_lab(linear: FloatArray) -> FloatArray:
    """Linear RGB (possibly above 1 after white balance) to ``(n, 3)`` L*, a*, b*."""
    clipped = np.clip(linear, 0.0, 1.0)
    srgb = np.where(
        clipped <= 0.0031308, clipped * 12.92, 1.055 * clipped ** (1 / 2.4) - 0.055
    ).astype(np.float32)
    # OpenCV converts a float32 RGB image in 0..1 to L* in 0..100 and signed a*, b*.
    lab = cv2.cvtColor(srgb.reshape(-1, 1, 3), cv2.COLOR_RGB2Lab)
    return np.asarray(lab, dtype=np.float32).reshape(-1, 3)


def _white_balance_gains(image: RGBImage, face_box: Box) -> FloatArray:
    """Per-channel von Kries gains, half-way to turning the grey-edge estimate grey."""
    height, width = image.shape[:2]
    # Edges are a coarse-scale statistic, so a small copy estimates them as well, and fast.
    scale = min(1.0, ESTIMATE_SIDE / max(height, width))
    small = image
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
    linear = _LINEAR_TABLE[small]
    gx = cv2.Sobel(linear, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(linear, cv2.CV_32F, 0, 1)
    magnitude = np.sqrt(np.square(gx) + np.square(gy))
    outside = np.ones(small.shape[:2], dtype=bool)
    box = face_box.clipped(width, height)
    outside[
        math.floor(box.top * scale) : math.ceil(box.bottom * scale),
        math.floor(box.left * scale) : math.ceil(box.right * scale),
    ] = False
    if outside.sum() < MIN_BACKGROUND_FRACTION * outside.size:
        return np.ones(3, dtype=np.float32)
    means = magnitude[outside].mean(axis=0)
    if np.any(means <= 0):  # a flat background says nothing about the light
        return np.ones(3, dtype=np.float32)
    full = np.clip(means.mean() / means, *GAIN_LIMITS)
    return np.asarray(1 + ADAPTATION * (full - 1), dtype=np.float32)


_LINEAR_TABLE = _to_linear(np.arange(256, dtype=np.float32) / np.float32(255))
