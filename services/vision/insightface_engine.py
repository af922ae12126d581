"""The opt-in face engine: the insightface package's SCRFD detector and ArcFace embedder.

The two ONNX files come from a local model-pack directory named in configuration, laid out as
insightface's ``buffalo_l`` pack (``det_10g.onnx`` and ``w600k_r50.onnx``; other names are
settings). Nothing is ever downloaded: a missing directory or file is a :class:`ConfigError`.
**The pretrained insightface packs are licensed for non-commercial research only**; a commercial
deployment needs models it has the rights to, with the same input and output signatures.

The work is the package's: ``insightface.model_zoo.get_model`` loads each file and tells a
detector from a recogniser by its signature, :class:`insightface.model_zoo.SCRFD` letterboxes
the image, decodes its outputs and suppresses overlapping boxes, and
``insightface.utils.face_align.norm_crop`` warps each face onto ArcFace's 112 x 112 template
before :class:`insightface.model_zoo.ArcFaceONNX` embeds it. The package works on BGR images
as OpenCV reads them; the engine takes RGB, so it flips the channels once. What is left here:

* SCRFD's outputs are read by position (scores, boxes, keypoints for each stride). An export
  that states each output's width (1, 4, 10) but lists them in another order, stride by stride
  as some do, has its output names put in the package's order.
* Embeddings are L2-normalised, and a recogniser with a fixed batch of one embeds face by face.

The five keypoints, in SCRFD's order: 0 the eye on the image's left (the subject's right eye),
1 the eye on the image's right, 2 the nose tip, 3 and 4 the mouth corners on the image's left
and right. They become the face's ``left_eye``, ``right_eye`` and ``nose`` (SCRFD finds the eyes'
centres, so no midpoint is taken as for dlib's eye corners).

On unit vectors, squared Euclidean distance is ``2 - 2 * cosine similarity``, so a Euclidean
threshold is a cosine threshold in other words. The default 1.1 is a cosine similarity of about
0.4, where ArcFace verification thresholds usually sit; tune it on real photos with the pack in
use (``MIRRORHUB_FACE_THRESHOLD``).

onnxruntime sessions may be run from several threads at once, and the package's detector keeps
only a cache of anchor grids, so :meth:`analyse` takes no lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import numpy as np
import numpy.typing as npt

from schemas.errors import ConfigError
from services.vision.engine import (
    Box,
    DetectedFace,
    Embedding,
    LocatedFace,
    RGBImage,
    checked_rgb,
)
from services.vision.insightface_package import (
    PROVIDERS,
    check_files,
    file_version,
    insightface_module,
    load,
    session_options,
)

DETECTOR_FILE = "det_10g.onnx"
RECOGNISER_FILE = "w600k_r50.onnx"

Floats = npt.NDArray[np.float32]
_ALIGNED_SIZE = 112


# insightface ships no type information; these Protocols type the few parts used here.
class _NodeArg(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> Sequence[int | str | None]: ...


class _Session(Protocol):
    def get_outputs(self) -> Sequence[_NodeArg]: ...


class _Detector(Protocol):
    session: _Session
    output_names: list[str]
    use_kps: bool
    static_input_size: tuple[int, int] | None

    def prepare(self, ctx_id: int, **kwargs: object) -> None: ...
    def detect(self, img: RGBImage, max_num: int = 0) -> tuple[Floats, Floats]: ...


class _Recogniser(Protocol):
    input_size: tuple[int, int]
    input_shape: Sequence[int | str | None]
    output_shape: Sequence[int | str | None]

    def get_feat(self, imgs: list[RGBImage]) -> Floats: ...


class _FaceAlign(Protocol):
    def norm_crop(self, img: RGBImage, landmark: Floats, image_size: int) -> RGBImage: ...


@dataclass(frozen=True)
class _Models:
    detector: _Detector
    recogniser: _Recogniser
    recogniser_batches: bool
    align: _FaceAlign
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
        check_files(self.model_paths, "insightface model")
        model_zoo = insightface_module("model_zoo")
        align: _FaceAlign = insightface_module("utils.face_align")
        detector_path, recogniser_path = self.model_paths
        version = self._version()

        def get_model(path: Path) -> object:
            # One session per input size is the package's default; one dynamic session serves
            # the single detect_size here.
            return load(path, lambda: model_zoo.get_model(
                str(path),
                providers=PROVIDERS,
                sess_options=session_options(self.settings.threads),
                static_shape_sessions=False,
            ))

        detector = get_model(detector_path)
        if not isinstance(detector, model_zoo.SCRFD) or not detector.use_kps:
            raise ConfigError(
                f"{self.settings.detector_file} is not an SCRFD detector with keypoints: "
                "expected one [1, 3, H, W] input and 9 or 15 outputs (scores, boxes, keypoints)"
            )
        self._prepare_detector(detector)
        recogniser = get_model(recogniser_path)
        if not isinstance(recogniser, model_zoo.ArcFaceONNX):
            raise ConfigError(f"{self.settings.recogniser_file} is not an ArcFace recogniser")
        batches = self._check_recogniser(recogniser)
        # The package reads the files by path: hashed before and after, the version names what
        # was loaded, even if a file is replaced meanwhile.
        if self._version() != version:
            raise ConfigError(f"the model files in {self.model_dir} changed while loading")
        self._models = _Models(
            detector=detector,
            recogniser=recogniser,
            recogniser_batches=batches,
            align=align,
            version=version,
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
        models = self._open_models()
        detections, keypoints = models.detector.detect(_bgr(image), max_num=0)
        faces = []
        for detection, points in zip(detections, keypoints, strict=True):
            landmarks = tuple((float(x), float(y)) for x, y in points)
            left_eye, right_eye, nose, _, _ = landmarks
            faces.append(LocatedFace(
                box=Box(*(round(float(v)) for v in detection[:4])),
                landmarks=landmarks,
                score=float(detection[4]),
                left_eye=left_eye,
                right_eye=right_eye,
                nose=nose,
                keypoints=landmarks,
            ))
        return faces

    def embed(self, image: RGBImage, faces: Sequence[LocatedFace]) -> list[Embedding]:
        """Each face aligned by its five keypoints and embedded, as a unit vector."""
        models = self._open_models()
        bgr = _bgr(image)
        if not faces:
            return []
        keypoints = np.array([face.landmarks for face in faces], dtype=np.float32)
        return self._embed(models, bgr, keypoints)

    def _open_models(self) -> _Models:
        models = self._models
        if models is None:
            raise RuntimeError("the insightface engine is not open; use it in a with block")
        return models

    def _version(self) -> str:
        return "insightface:" + "+".join(file_version(path) for path in self.model_paths)

    def _prepare_detector(self, detector: _Detector) -> None:
        """Fix the detector's size and thresholds, and its outputs in the package's order.

        The package reads the outputs as scores, boxes and keypoints, each for every stride.
        Exports that state each output's width may list them in any order; those that do not
        are taken to follow the package's.
        """
        size = self.settings.detect_size
        name = self.settings.detector_file
        fixed = detector.static_input_size
        if fixed is not None and fixed != (size, size):
            raise ConfigError(f"{name} takes a fixed {fixed} input; set detect_size to match")
        # A negative device id would make the package rebuild a session that is on the CPU.
        detector.prepare(
            0,
            input_size=(size, size),
            det_thresh=self.settings.score_threshold,
            nms_thresh=self.settings.nms_threshold,
        )
        outputs = detector.session.get_outputs()
        widths = [output.shape[-1] if output.shape else None for output in outputs]
        if not all(isinstance(width, int) for width in widths):
            return
        order = [i for kind in (1, 4, 10) for i, width in enumerate(widths) if width == kind]
        if len(order) != len(outputs):
            raise ConfigError(f"{name} has outputs {widths} wide, not 1, 4 and 10 for each stride")
        detector.output_names = [outputs[index].name for index in order]

    def _check_recogniser(self, recogniser: _Recogniser) -> bool:
        """Whether the recogniser takes every face at once (its batch dimension is not fixed)."""
        if (
            tuple(recogniser.input_size) != (_ALIGNED_SIZE, _ALIGNED_SIZE)
            or list(recogniser.output_shape[1:]) != [self.dimension]
        ):
            raise ConfigError(
                f"{self.settings.recogniser_file} is not an ArcFace recogniser: expected a "
                f"[n, 3, 112, 112] input and a [n, {self.dimension}] output"
            )
        return not isinstance(recogniser.input_shape[0], int)

    def _embed(self, models: _Models, bgr: RGBImage, keypoints: Floats) -> list[Embedding]:
        crops = [
            models.align.norm_crop(bgr, landmark=points, image_size=_ALIGNED_SIZE)
            for points in keypoints
        ]
        if models.recogniser_batches:
            raw = models.recogniser.get_feat(crops)
        else:
            raw = np.concatenate([models.recogniser.get_feat([crop]) for crop in crops])
        vectors = raw.reshape(len(crops), -1).astype(np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        vectors /= np.maximum(norms, np.float32(1e-12))
        return [np.array(row) for row in vectors]


def _bgr(image: RGBImage) -> RGBImage:
    """The package's channel order (OpenCV's), from a checked RGB image."""
    return np.ascontiguousarray(checked_rgb(image)[..., ::-1])
