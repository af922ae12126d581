"""The optional anti-spoofing model at a mirror: each tracked face's crop judged by a classifier.

``MIRRORHUB_LIVENESS_MODEL=path.onnx`` names a model with the signature of insightface's
liveness add-on (services/vision/insightface_liveness.py): an 80 x 80 RGB crop aligned by five
points, as the MiniFASNet family takes it, in; one live probability out. It runs where the
engine runs (an analysis worker process, or a thread), on the decoded frame, for every face of
every frame (:func:`services.vision.sightings.follow`); the verdict it feeds is the tracker's
(services/vision/watch.py).

The add-on aligns a face by five keypoints in SCRFD's layout: the face's own (SCRFD's with the
insightface engine, MTCNN's with dlib). For a face without them (dlib's eye corners and nose
base alone) the add-on's template is placed by the eyes: the similarity that takes its two eye
points onto the eye centres also gives the three other points it is handed, so the crop is the
one those eyes imply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np

from services.vision.engine import DetectedFace, LocatedFace, Point, RGBImage
from services.vision.insightface_liveness import LivenessScore
from services.vision.insightface_package import insightface_module


class SpoofModel(Protocol):
    """What the frames path needs of the model (:class:`InsightFaceLiveness` is one)."""

    def score(self, image: RGBImage, keypoints: Sequence[Point]) -> LivenessScore: ...


def keypoints_for(face: LocatedFace | DetectedFace) -> tuple[Point, ...]:
    """The five points, in SCRFD's layout, that align ``face`` for the add-on (module
    docstring)."""
    if face.keypoints is not None:
        return face.keypoints
    template = np.asarray(insightface_module("addons.liveness").DESTINATION_LANDMARKS,
                          dtype=np.float64)
    # Points as complex numbers: a similarity is z -> origin + scale * (z - template's eye).
    ends = template[:2, 0] + 1j * template[:2, 1]
    left, right = complex(*face.left_eye), complex(*face.right_eye)
    if ends[1] == ends[0] or left == right:
        raise ValueError("the eyes coincide: nothing to align")
    scale = (right - left) / (ends[1] - ends[0])
    placed = left + scale * (template[:, 0] + 1j * template[:, 1] - ends[0])
    return tuple((float(z.real), float(z.imag)) for z in placed)


def judge(model: SpoofModel, image: RGBImage, face: LocatedFace) -> LivenessScore:
    """The model's verdict on ``face`` of ``image``; not judged (``rejected`` says why) when
    its points align no crop, too little of the crop is in the frame, or the model answers
    something that is not a probability: one face's trouble never costs the frame."""
    try:
        return model.score(image, keypoints_for(face))
    except (ValueError, RuntimeError) as exc:
        return LivenessScore(live_score=None, is_live=None, rejected=str(exc))
