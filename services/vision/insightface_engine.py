"""The opt-in face engine: insightface's SCRFD detector and ArcFace embedder through onnxruntime.

The two ONNX files come from a local model-pack directory named in configuration, laid out as
insightface's ``buffalo_l`` pack (``det_10g.onnx`` and ``w600k_r50.onnx``; other names are
settings). Nothing is ever downloaded: a missing directory or file is a :class:`ConfigError`.
**The pretrained insightface packs are licensed for non-commercial research only**; a commercial
deployment needs models it has the rights to, with the same input and output signatures.

Neither the ``insightface`` package nor its code is used: it depends on ``opencv-python``, which
writes the same ``cv2/`` as the ``opencv-python-headless`` build this project installs. The
pre- and post-processing below follow the published model conventions, written with numpy and
OpenCV:

* **SCRFD** takes ``[1, 3, H, W]`` float32 RGB scaled as ``(v - 127.5) / 128``. The image is
  resized, keeping its aspect ratio, into the top-left corner of a black ``detect_size`` square.
  The nine outputs are per-anchor scores ``[N, 1]``, box distances ``[N, 4]`` and keypoint
  offsets ``[N, 10]``, each for strides 8, 16 and 32 in that order (the output names vary
  between exports, so only their order is relied on). Anchors sit on a grid of ``stride`` px
  from the corner, several per grid point, point-major; distances and offsets are in units of
  the stride. Boxes above ``score_threshold`` go through greedy non-maximum suppression.
* **ArcFace** takes ``[n, 3, 112, 112]`` float32 RGB scaled as ``(v - 127.5) / 127.5``: the face
  warped by the least-squares similarity transform that takes its five keypoints onto the
  standard ArcFace template. Its ``[n, 512]`` output is L2-normalised here.

The five keypoints, in SCRFD's order: 0 the eye on the image's left (the subject's right eye),
1 the eye on the image's right, 2 the nose tip, 3 and 4 the mouth corners on the image's left
and right. They become the face's ``left_eye``, ``right_eye`` and ``nose`` (SCRFD finds the eyes'
centres, so no midpoint is taken as for dlib's eye corners).

On unit vectors, squared Euclidean distance is ``2 - 2 * cosine similarity``, so a Euclidean
threshold is a cosine threshold in other words. The default 1.1 is a cosine similarity of about
0.4, where ArcFace verification thresholds usually sit; tune it on real photos with the pack in
use (``MIRRORHUB_FACE_THRESHOLD``).

onnxruntime sessions may be run from several threads at once, so :meth:`analyse` takes no lock.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import cv2
import numpy as np

from schemas.errors import ConfigError
from services.vision.engine import (
    Box,
    DetectedFace,
    Embedding,
    LocatedFace,
    RGBImage,
    checked_rgb,
)
from services.vision.scrfd import STRIDES, Floats, decode_scrfd, nms, similarity_transform

DETECTOR_FILE = "det_10g.onnx"
RECOGNISER_FILE = "w600k_r50.onnx"


_ALIGNED_SIZE = 112
# Where ArcFace was trained to see the five keypoints, in a 112 x 112 crop.
_ARCFACE_TEMPLATE = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float64,
)


# onnxruntime ships no type information; these Protocols type the few calls made here.
class _NodeArg(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[int | str | None]: ...


class _Session(Protocol):
    def get_inputs(self) -> Sequence[_NodeArg]: ...
    def get_outputs(self) -> Sequence[_NodeArg]: ...
    def run(self, output_names: None, input_feed: dict[str, Floats]) -> list[Floats]: ...


@dataclass(frozen=True)
class _Models:
    detector: _Session
    detector_input: str
    detector_order: tuple[int, ...]
    recogniser: _Session
    recogniser_input: str
    recogniser_batches: bool
    version: str


@dataclass(frozen=True)
class InsightFaceSettings:
    """How the pack is found and how its outputs are read.

    ``score_threshold`` and ``nms_threshold`` are the detector's customary 0.5 and 0.4;
    ``detect_size`` (a multiple of 32) is the square the image is fitted into before detection.
    ``threads`` caps onnxruntime's threads per model (0: its own choice, one per core).
    """

    detector_file: str = DETECTOR_FILE
    recogniser_file: str = RECOGNISER_FILE
    detect_size: int = 640
    score_threshold: float = 0.5
    nms_threshold: float = 0.4
    threshold: float = 1.1
    dimension: int = 512
    threads: int = 0

    def __post_init__(self) -> None:
        if self.detect_size < 32 or self.detect_size % 32:
            raise ConfigError("detect_size must be a positive multiple of 32")
        if not 0 < self.score_threshold < 1 or not 0 < self.nms_threshold < 1:
            raise ConfigError("score_threshold and nms_threshold must lie between 0 and 1")
        if not 0 < self.threshold < 2:
            raise ConfigError("the distance threshold between unit vectors must lie in (0, 2)")
        if self.threads < 0:
            raise ConfigError("threads must not be negative")


class InsightFaceEngine:
    """The :class:`~services.vision.engine.FaceEngine` built on an insightface model pack.

    ``model_version`` names both files with the start of their SHA-256, so embeddings from two
    packs, or from a file replaced under the same name, are never compared; it is known once the
    engine is open. Embeddings are unit vectors of ``dimension`` (512) values. Landmarks are
    SCRFD's five points (see the module docstring).
    """

    name = "insightface"

    def __init__(self, model_dir: Path, settings: InsightFaceSettings | None = None) -> None:
        self.model_dir = model_dir
        self.settings = settings or InsightFaceSettings()
        self._models: _Models | None = None

    @property
    def threshold(self) -> float:
        return self.settings.threshold

    @property
    def dimension(self) -> int:
        return self.settings.dimension

    @property
    def model_version(self) -> str:
        return self._open_models().version

    @property
    def model_paths(self) -> tuple[Path, Path]:
        """The detector and the recogniser, in that order."""
        return (
            self.model_dir / self.settings.detector_file,
            self.model_dir / self.settings.recogniser_file,
        )

    def __enter__(self) -> Self:
        if not self.model_dir.is_dir():
            raise ConfigError(
                f"insightface model directory {self.model_dir} does not exist; put a model pack "
                "there (models are never downloaded)"
            )
        missing = [str(path) for path in self.model_paths if not path.is_file()]
        if missing:
            raise ConfigError(
                f"insightface model file(s) missing: {', '.join(missing)} "
                "(models are never downloaded; copy the pack there or configure the file names)"
            )
        ort = importlib.import_module("onnxruntime")
        options = ort.SessionOptions()
        options.log_severity_level = 3  # errors only: onnxruntime's notices are not ours
        options.intra_op_num_threads = self.settings.threads
        options.inter_op_num_threads = 1
        sessions: list[_Session] = []
        digests: list[str] = []
        for path in self.model_paths:
            # The session is built from the very bytes that were hashed.
            data = path.read_bytes()
            digests.append(f"{path.stem}@{hashlib.sha256(data).hexdigest()[:12]}")
            try:
                session = ort.InferenceSession(
                    data, sess_options=options, providers=["CPUExecutionProvider"]
                )
            except Exception as exc:  # onnxruntime raises its own, undocumented types
                raise ConfigError(f"{path} is not a loadable ONNX model: {exc}") from exc
            sessions.append(session)
        detector, recogniser = sessions
        detector_input, detector_order = self._check_detector(detector)
        recogniser_input, batches = self._check_recogniser(recogniser)
        self._models = _Models(
            detector=detector,
            detector_input=detector_input,
            detector_order=detector_order,
            recogniser=recogniser,
            recogniser_input=recogniser_input,
            recogniser_batches=batches,
            version="insightface:" + "+".join(digests),
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
        """Detect every face, strongest first, then align and embed each.

        Raises ``ValueError`` for anything but an ``(h, w, 3)`` uint8 array and ``RuntimeError``
        if the engine is not open.
        """
        faces = self.locate(image)
        return [face.embedded(embedding)
                for face, embedding in zip(faces, self.embed(image, faces), strict=True)]

    def locate(self, image: RGBImage, regions: Sequence[Box] | None = None) -> list[LocatedFace]:
        """Every face and its five keypoints, strongest first. ``regions`` are not used: SCRFD
        scans the whole image fitted into its ``detect_size`` square, whose cost does not
        depend on the part of it wanted."""
        image = checked_rgb(image)
        boxes, scores, keypoints = self._detect(self._open_models(), image)
        faces = []
        for box, score, points in zip(boxes, scores, keypoints, strict=True):
            landmarks = tuple((float(x), float(y)) for x, y in points)
            left_eye, right_eye, nose, _, _ = landmarks
            faces.append(LocatedFace(
                box=Box(*(round(float(v)) for v in box)),
                landmarks=landmarks,
                score=float(score),
                left_eye=left_eye,
                right_eye=right_eye,
                nose=nose,
            ))
        return faces

    def embed(self, image: RGBImage, faces: Sequence[LocatedFace]) -> list[Embedding]:
        """Each face aligned by its five keypoints and embedded, as a unit vector."""
        image = checked_rgb(image)
        models = self._open_models()
        if not faces:
            return []
        keypoints = np.array([face.landmarks for face in faces], dtype=np.float32)
        return self._embed(models, image, keypoints)

    def _open_models(self) -> _Models:
        models = self._models
        if models is None:
            raise RuntimeError("the insightface engine is not open; use it in a with block")
        return models

    def _check_detector(self, session: _Session) -> tuple[str, tuple[int, ...]]:
        """The input's name, and the outputs' positions as scores, boxes, keypoints by stride.

        Exports that state each output's width may list them in any order (some go stride by
        stride); those that do not are taken to follow insightface's order.
        """
        inputs, outputs = session.get_inputs(), session.get_outputs()
        name = self.settings.detector_file
        if len(inputs) != 1 or len(inputs[0].shape) != 4 or len(outputs) != 3 * len(STRIDES):
            raise ConfigError(
                f"{name} is not an SCRFD detector with keypoints: expected one [1, 3, H, W] "
                f"input and 9 outputs, found {len(inputs)} input(s) and {len(outputs)} output(s)"
            )
        fixed = [dim for dim in inputs[0].shape[2:] if isinstance(dim, int)]
        if fixed and fixed != [self.settings.detect_size] * 2:
            raise ConfigError(
                f"{name} takes a fixed {inputs[0].shape[2:]} input; set detect_size to match"
            )
        widths = [output.shape[-1] if output.shape else None for output in outputs]
        if not all(isinstance(width, int) for width in widths):
            return inputs[0].name, tuple(range(len(outputs)))
        order = tuple(
            index for kind in (1, 4, 10) for index, width in enumerate(widths) if width == kind
        )
        if len(order) != len(outputs):
            raise ConfigError(f"{name} has outputs {widths} wide, not 1, 4 and 10 for each stride")
        return inputs[0].name, order

    def _check_recogniser(self, session: _Session) -> tuple[str, bool]:
        inputs, outputs = session.get_inputs(), session.get_outputs()
        size = [_ALIGNED_SIZE, _ALIGNED_SIZE]
        if (
            len(inputs) != 1
            or len(outputs) != 1
            or list(inputs[0].shape[1:]) != [3, *size]
            or list(outputs[0].shape[1:]) != [self.dimension]
        ):
            raise ConfigError(
                f"{self.settings.recogniser_file} is not an ArcFace recogniser: expected a "
                f"[n, 3, 112, 112] input and a [n, {self.dimension}] output"
            )
        # A symbolic or missing batch dimension takes every face at once.
        return inputs[0].name, not isinstance(inputs[0].shape[0], int)

    def _detect(self, models: _Models, image: RGBImage) -> tuple[Floats, Floats, Floats]:
        """Boxes ``[n, 4]``, scores ``[n]`` and keypoints ``[n, 5, 2]`` in image coordinates."""
        size = self.settings.detect_size
        height, width = image.shape[:2]
        scale = min(size / height, size / width)
        fitted_w, fitted_h = max(1, round(width * scale)), max(1, round(height * scale))
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        canvas[:fitted_h, :fitted_w] = cv2.resize(
            image, (fitted_w, fitted_h), interpolation=cv2.INTER_LINEAR
        )
        blob = ((canvas.astype(np.float32) - 127.5) / 128.0).transpose(2, 0, 1)[np.newaxis]
        raw = models.detector.run(None, {models.detector_input: np.ascontiguousarray(blob)})
        outputs = [raw[index] for index in models.detector_order]
        boxes, scores, keypoints = decode_scrfd(outputs, size, size, self.settings.score_threshold)
        keep = nms(boxes, scores, self.settings.nms_threshold)
        # Each axis was rounded on its own, so each maps back by its own factor.
        factors = np.array([width / fitted_w, height / fitted_h], dtype=np.float32)
        return (
            boxes[keep] * np.tile(factors, 2),
            scores[keep],
            keypoints[keep] * factors,
        )

    def _embed(self, models: _Models, image: RGBImage, keypoints: Floats) -> list[Floats]:
        crops = [
            cv2.warpAffine(
                image,
                similarity_transform(points, _ARCFACE_TEMPLATE),
                (_ALIGNED_SIZE, _ALIGNED_SIZE),
                flags=cv2.INTER_LINEAR,
                borderValue=(0, 0, 0),
            )
            for points in keypoints
        ]
        batch = ((np.stack(crops).astype(np.float32) - 127.5) / 127.5).transpose(0, 3, 1, 2)
        batch = np.ascontiguousarray(batch)
        if models.recogniser_batches:
            raw = models.recogniser.run(None, {models.recogniser_input: batch})[0]
        else:
            raw = np.concatenate(
                [
                    models.recogniser.run(None, {models.recogniser_input: batch[i : i + 1]})[0]
                    for i in range(len(crops))
                ]
            )
        vectors = raw.reshape(len(crops), -1).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, np.float32(1e-12))
        return [np.array(row) for row in vectors]

