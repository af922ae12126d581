"""One frame of a mirror, seen with the faces of the frame before in mind.

This half of tracking (:mod:`services.vision.tracking` keeps the tracks) runs where the engine
runs: in an analysis worker process, or in a thread. It takes a :class:`Plan`, what the frame
before left (each track's box, landmark shape and face chip), and returns a :class:`Sighting`
of every face, with an embedding only where one is needed:

1. **Where to look.** With faces tracked on the frame before and no whole-frame scan due, the
   detector scans only a region around each of their boxes (:attr:`FaceChecks.region` times
   its size; dlib: about 5 ms against 15 to 20 ms for a 640x360 frame). If one of them is not
   found there, the whole frame is scanned after all: it may have moved fast. A track whose
   face was missing from the frame before gets no region of its own (else every frame would
   scan twice until it expires); a whole-frame scan, or a face found in another region, may
   still find it again.
2. **Which track a face continues.** Box overlap (intersection over union at least
   :attr:`FaceChecks.min_overlap`), each track and each face paired at most once, best
   overlap first.
3. **Whether it is plainly the same face.** Two checks on its landmarks: their *shape* (the
   points relative to the eyes, in eye gaps) moved little, and the small grey *chip* the eyes
   place (24 px, 1.6 eye gaps wide, the eyes 30% from its top, contrast normalised) looks like
   the track's by normalised correlation. Measured with dlib: of 67 pairs of consecutive
   frames of the Hamilton clip (a head turning), one has a likeness below 0.8 (0.62), half are
   above 0.95, and none changes shape by more than 0.12; of the 279 pairs of faces of two
   different people among the shared photos, none is more alike than 0.67 (kit_harington and
   rose_leslie). So at :attr:`FaceChecks.min_likeness` 0.8 two people are far from passing for
   each other, and a face in front of a mirror seldom pays a descriptor for the checks alone.

With an anti-spoofing model (services/vision/spoof.py), every face also gets its verdict here,
where the decoded frame is.

A face gets an embedding when it continues no track, when a check fails, or when its track's
embedding is due for renewal (:attr:`Hint.due`); the tracker then decides from the distance
between old and new embedding whether it is still the same person. Nothing here decides a
name: it only saves descriptors where the face is plainly the one already described.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from schemas.errors import ConfigError
from services.vision.engine import Box, Embedding, FaceEngine, LocatedFace, RGBImage
from services.vision.insightface_liveness import LivenessScore
from services.vision.spoof import SpoofModel, judge

Chip = npt.NDArray[np.float32]
"""A face's ``(CHIP_SIZE, CHIP_SIZE)`` grey chip, zero mean and unit norm, so the sum of the
product of two chips is their normalised correlation."""

Shape = npt.NDArray[np.float32]
"""A face's landmarks ``(n, 2)``, from the eyes' midpoint along and across the eye line, in eye
gaps: the same whatever the face's place, size and roll in the frame."""

CHIP_SIZE = 24
_CHIP_WIDTH = 1.6  # eye gaps across the chip
_CHIP_EYES = 0.3  # the eye line's height in the chip, from its top
_MIN_EYE_GAP = 2.0  # px: closer eyes place no chip and give no shape


@dataclass(frozen=True)
class FaceChecks:
    """When a face is taken for the track's without a descriptor (see the module docstring)."""

    min_overlap: float = 0.3
    min_likeness: float = 0.8
    max_shape_change: float = 0.15
    region: float = 2.0  # the region scanned around a track's box, in box sizes

    def __post_init__(self) -> None:
        if not 0 < self.min_overlap <= 1 or not -1 <= self.min_likeness <= 1:
            raise ConfigError("min_overlap must lie in (0, 1] and min_likeness in [-1, 1]")
        if self.max_shape_change < 0 or self.region < 1:
            raise ConfigError("max_shape_change must not be negative, region at least 1")


@dataclass(frozen=True, eq=False)
class Hint:
    """What a track left from its last frame; ``due``: its embedding is to be renewed now;
    ``present``: its face was on the mirror's frame before this one."""

    box: Box
    shape: Shape | None
    chip: Chip | None
    due: bool
    present: bool = True


@dataclass(frozen=True, eq=False)
class Plan:
    """What one frame's analysis needs: the mirror's tracks, whether to scan the whole frame,
    the frame size the tracks were seen at (a frame of another size ignores them)."""

    hints: tuple[Hint, ...]
    scan_all: bool
    size: tuple[int, int] | None  # width, height
    checks: FaceChecks


@dataclass(frozen=True, eq=False)
class Sighting:
    """One face of the frame: ``follows`` is the index of the hint its box continues, if any;
    ``embedding`` is None when the checks found it plainly that hint's face; ``spoof`` the
    anti-spoofing model's verdict, None without a model."""

    face: LocatedFace
    shape: Shape | None
    chip: Chip | None
    follows: int | None
    embedding: Embedding | None
    spoof: LivenessScore | None = None


@dataclass(frozen=True, eq=False)
class Followed:
    """Every face of the frame, largest first; ``scanned_all``: the whole frame was scanned."""

    sightings: tuple[Sighting, ...]
    scanned_all: bool
    size: tuple[int, int]


def follow(engine: FaceEngine, image: RGBImage, plan: Plan,
           spoof: SpoofModel | None = None) -> Followed:
    """The faces of ``image`` as the module docstring says, each judged by ``spoof`` if given.
    Blocking, like the engine."""
    height, width = image.shape[:2]
    hints = plan.hints if plan.size == (width, height) else ()
    checks = plan.checks
    present = [index for index, hint in enumerate(hints) if hint.present]
    whole = plan.scan_all or not present
    regions = None if whole else [region(hints[index].box, checks.region, width, height)
                                  for index in present]
    faces = _largest_first(engine.locate(image, regions))
    pairs = _pairs(hints, faces, checks.min_overlap)
    if not whole and not set(present) <= set(pairs.values()):  # a face is not where it was
        faces, whole = _largest_first(engine.locate(image)), True
        pairs = _pairs(hints, faces, checks.min_overlap)
    seen = []
    for index, face in enumerate(faces):
        follows = pairs.get(index)
        shape, chip = face_shape(face), face_chip(image, face)
        plain = follows is not None and not hints[follows].due and unchanged(
            hints[follows], shape, chip, checks)
        seen.append((face, shape, chip, follows, plain))
    embeddings = iter(engine.embed(image, [face for face, *_, plain in seen if not plain]))
    return Followed(
        tuple(Sighting(face, shape, chip, follows, None if plain else next(embeddings),
                       None if spoof is None else judge(spoof, image, face))
              for face, shape, chip, follows, plain in seen),
        whole, (width, height))


def region(box: Box, size: float, width: int, height: int) -> Box:
    """``box`` grown about its centre to ``size`` times its width and height, in the image."""
    half_w, half_h = box.width * size / 2, box.height * size / 2
    centre_x, centre_y = (box.left + box.right) / 2, (box.top + box.bottom) / 2
    return Box(math.floor(centre_x - half_w), math.floor(centre_y - half_h),
               math.ceil(centre_x + half_w), math.ceil(centre_y + half_h)).clipped(width, height)


def unchanged(hint: Hint, shape: Shape | None, chip: Chip | None, checks: FaceChecks) -> bool:
    """Whether the face with ``shape`` and ``chip`` is plainly the one ``hint`` left."""
    if shape is None or chip is None or hint.shape is None or hint.chip is None:
        return False
    if shape.shape != hint.shape.shape:
        return False
    if float(np.abs(shape - hint.shape).max()) > checks.max_shape_change:
        return False
    return likeness(chip, hint.chip) >= checks.min_likeness


def likeness(a: Chip, b: Chip) -> float:
    """The normalised correlation of two chips: 1 for the same picture, about 0 for unrelated."""
    return float(np.vdot(a, b))


def face_shape(face: LocatedFace) -> Shape | None:
    """The face's landmarks relative to its eyes (see :data:`Shape`); None when the eyes
    nearly coincide."""
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    gap = math.hypot(rx - lx, ry - ly)
    if gap < _MIN_EYE_GAP:
        return None
    along = np.array([rx - lx, ry - ly]) / gap
    across = np.array([-along[1], along[0]])
    points = np.asarray(face.landmarks, dtype=np.float64) - ((lx + rx) / 2, (ly + ry) / 2)
    return (np.stack([points @ along, points @ across], axis=1) / gap).astype(np.float32)


def face_chip(image: RGBImage, face: LocatedFace) -> Chip | None:
    """The face's grey chip (see :data:`Chip`), upright whatever its roll; None when the eyes
    nearly coincide or the chip is one flat grey."""
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    gap = math.hypot(rx - lx, ry - ly)
    if gap < _MIN_EYE_GAP:
        return None
    scale = CHIP_SIZE / (_CHIP_WIDTH * gap)
    cos, sin = (rx - lx) / gap * scale, (ry - ly) / gap * scale
    middle_x, middle_y = (lx + rx) / 2, (ly + ry) / 2
    # Rotate the eye line level, scale, and put the eyes' midpoint at its place in the chip.
    matrix = np.array([
        [cos, sin, CHIP_SIZE / 2 - (cos * middle_x + sin * middle_y)],
        [-sin, cos, CHIP_SIZE * _CHIP_EYES - (-sin * middle_x + cos * middle_y)],
    ])
    patch = cv2.warpAffine(image, matrix, (CHIP_SIZE, CHIP_SIZE), flags=cv2.INTER_LINEAR,
                           borderMode=cv2.BORDER_REPLICATE)
    grey = cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY).astype(np.float32)
    grey -= grey.mean()
    norm = float(np.linalg.norm(grey))
    if norm < 1e-3:
        return None
    chip: Chip = grey / np.float32(norm)
    return chip


def _largest_first(faces: list[LocatedFace]) -> list[LocatedFace]:
    return sorted(faces, key=lambda face: face.box.width * face.box.height, reverse=True)


def _pairs(hints: Sequence[Hint], faces: Sequence[LocatedFace],
           min_overlap: float) -> dict[int, int]:
    """Face index to hint index: best overlaps first, each face and each hint at most once."""
    candidates = sorted(
        ((face.box.overlap(hint.box), face_index, hint_index)
         for face_index, face in enumerate(faces) for hint_index, hint in enumerate(hints)),
        reverse=True)
    pairs: dict[int, int] = {}
    taken: set[int] = set()
    for overlap, face_index, hint_index in candidates:
        if overlap < min_overlap:
            break
        if face_index not in pairs and hint_index not in taken:
            pairs[face_index] = hint_index
            taken.add(hint_index)
    return pairs
