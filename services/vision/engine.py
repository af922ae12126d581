"""What every face engine offers the vision service, whichever models sit behind it.

An engine turns one RGB image into a list of :class:`DetectedFace`: where the face is, its eyes
and nose (named, so no caller reads an engine's own landmark layout), and an embedding whose
Euclidean distance to another embedding from the *same* engine and model version says how alike
the two faces are. Embeddings from different engines or model versions are not comparable,
which is why the service stores ``model_version`` beside every embedding.

Engines are synchronous context managers: models load in ``__enter__`` (never at import) and
are released in ``__exit__``. :meth:`FaceEngine.analyse` is CPU-bound and blocking; the service
calls it with :func:`asyncio.to_thread`.

:meth:`FaceEngine.analyse` is :meth:`FaceEngine.locate` followed by :meth:`FaceEngine.embed`, and
the two halves are offered apart for tracking faces across a mirror's frames
(:mod:`services.vision.tracking`): finding a face and its landmarks costs a fraction of its
embedding (dlib on a 640x360 frame: 15 ms and 0.4 ms against 80 ms), so a face that is plainly
the one of the frame before keeps the embedding it had.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]
"""An image as a C-contiguous ``(height, width, 3)`` uint8 array in R, G, B order."""

Point = tuple[float, float]
"""An ``(x, y)`` position in pixels of the image given to the engine."""

Embedding = npt.NDArray[np.float32]
"""A face embedding: a read-only float32 vector of the engine's ``dimension``."""


def checked_rgb(image: RGBImage) -> RGBImage:
    """``image`` as a C-contiguous array, or ``ValueError`` unless it is ``(h, w, 3)`` uint8."""
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ValueError(f"expected an (h, w, 3) uint8 image, not {image.shape} {image.dtype}")
    return np.ascontiguousarray(image)


@dataclass(frozen=True)
class Box:
    """A face rectangle in pixel coordinates of the image given to the engine.

    ``right`` and ``bottom`` are exclusive, so ``image[box.top:box.bottom, box.left:box.right]``
    is the face once the box is :meth:`clipped`. A detector may return a box that reaches past
    the image edges when the face is cut off by the frame; it is reported as detected.
    """

    left: int
    top: int
    right: int
    bottom: int

    @property
    def width(self) -> int:
        return self.right - self.left

    @property
    def height(self) -> int:
        return self.bottom - self.top

    def clipped(self, width: int, height: int) -> Box:
        """The part of the box inside a ``width`` x ``height`` image (possibly empty)."""
        left = min(max(self.left, 0), width)
        top = min(max(self.top, 0), height)
        return Box(left, top, max(left, min(self.right, width)), max(top, min(self.bottom, height)))

    def overlap(self, other: Box) -> float:
        """Intersection over union: 1 for the same box, 0 for boxes that do not meet."""
        width = min(self.right, other.right) - max(self.left, other.left)
        height = min(self.bottom, other.bottom) - max(self.top, other.top)
        if width <= 0 or height <= 0:
            return 0.0
        shared = width * height
        return shared / (self.width * self.height + other.width * other.height - shared)


@dataclass(frozen=True, eq=False)
class DetectedFace:
    """One face found in an image.

    ``left_eye`` and ``right_eye`` are the centres of the eyes on the image's left and on its
    right (from an unmirrored camera, the subject's right and left eye), ``nose`` a point on
    the nose below them (its tip or its base, as the engine finds it); every engine fills them
    in. ``landmarks`` are all the points the engine found, in its own order (each engine
    documents its layout); read them only for work that is about that engine. All are in the
    same coordinates as ``box``. ``keypoints``, where the engine finds them, are five points
    in SCRFD's layout, whichever engine: the eye centres on the image's left and right, the
    nose tip, the mouth corners on the left and right (liveness asks of them whether the face
    is a plane); None where it found none. ``embedding`` is made read-only here so a face stays
    immutable. ``score`` is the detector's confidence on the
    engine's own scale: higher is surer, and values are only comparable within one engine.
    Faces compare by identity, since equal embeddings almost never arise twice.
    """

    box: Box
    landmarks: tuple[Point, ...]
    embedding: Embedding
    score: float
    left_eye: Point
    right_eye: Point
    nose: Point
    keypoints: tuple[Point, ...] | None = None

    def __post_init__(self) -> None:
        self.embedding.flags.writeable = False


@dataclass(frozen=True, eq=False)
class LocatedFace:
    """A face found and its landmarks, before any embedding: :class:`DetectedFace` less its
    ``embedding``, with the same meaning for every field."""

    box: Box
    landmarks: tuple[Point, ...]
    score: float
    left_eye: Point
    right_eye: Point
    nose: Point
    keypoints: tuple[Point, ...] | None = None

    def embedded(self, embedding: Embedding) -> DetectedFace:
        """This face with ``embedding``: its own, or one its track computed before."""
        return DetectedFace(box=self.box, landmarks=self.landmarks, embedding=embedding,
                            score=self.score, left_eye=self.left_eye, right_eye=self.right_eye,
                            nose=self.nose, keypoints=self.keypoints)


class FaceEngine(Protocol):
    """A face detector plus embedder, opened as a context manager before use.

    ``threshold`` is the engine's default Euclidean distance below which two embeddings are
    taken to be the same person; :class:`services.vision.matcher.Gallery` uses it.
    """

    @property
    def name(self) -> str: ...

    @property
    def model_version(self) -> str:
        """Names the model files, so stored embeddings can be matched only against their kind."""
        ...

    @property
    def dimension(self) -> int: ...

    @property
    def threshold(self) -> float: ...

    def __enter__(self) -> Self: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None: ...

    def analyse(self, image: RGBImage) -> list[DetectedFace]:
        """Every face in ``image``, in the detector's order. Blocking; safe from any thread."""
        ...

    def locate(self, image: RGBImage, regions: Sequence[Box] | None = None) -> list[LocatedFace]:
        """The faces of ``image`` with their landmarks, without embeddings.

        ``regions`` asks for the faces inside those parts of the image only, where that is
        cheaper than the whole: an engine may scan a little more than each region (dlib widens
        it to its scanning grid) or, when its cost does not depend on the area scanned, the
        whole image (insightface). Without ``regions`` it finds what :meth:`analyse` finds.
        """
        ...

    def embed(self, image: RGBImage, faces: Sequence[LocatedFace]) -> list[Embedding]:
        """The embedding of each of ``faces``, located in this same ``image``: for the faces
        :meth:`locate` gave, exactly what :meth:`analyse` would have computed."""
        ...
