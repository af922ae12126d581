"""The optional passive liveness model: insightface's RGB liveness add-on, from a local file.

``insightface.addons.liveness.Liveness`` (insightface 2.1) takes a face's five SCRFD keypoints,
warps the face onto its own 80 x 80 template, feeds it as RGB scaled to [0, 1] (``[N, 3, 80,
80]`` float32) and reads one live probability (``[N]``). It refuses to guess when more than 30%
of that crop falls outside the frame. The model file is distributed apart from the package
(its ``ensure_addon`` would fetch it; that is never called here): configure a path to a copy.
Like the packs, insightface's published liveness model is for non-commercial research only.

The keypoints must be SCRFD's, in its order (the :class:`InsightFaceEngine`'s ``landmarks``):
dlib's five points are eye corners and the nose base and would warp the face wrongly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol, Self

import numpy as np

from schemas.errors import ConfigError
from services.vision.engine import Point, RGBImage, checked_rgb
from services.vision.insightface_package import (
    PROVIDERS,
    check_files,
    file_version,
    insightface_module,
    load,
    session_options,
)


class _Liveness(Protocol):
    threshold: float

    def predict(self, image: RGBImage, landmarks: object) -> dict[str, object]: ...


@dataclass(frozen=True)
class LivenessScore:
    """One face's liveness.

    ``live_score`` is the model's probability that the face is a live one and ``is_live``
    whether it reaches the threshold. Both are ``None`` when the face could not be judged;
    ``rejected`` then says why, in English for a person (too little of the face is in view).
    """

    live_score: float | None
    is_live: bool | None
    rejected: str | None = None


class InsightFaceLiveness:
    """insightface's liveness add-on, opened as a context manager like the engines.

    ``threshold`` is the live probability at or above which a face counts as live (``None``:
    the package's default, 0.8). ``model_version`` names the file by its SHA-256, known once
    open. :meth:`score` is blocking and safe from several threads, as onnxruntime sessions are.
    """

    def __init__(self, model_file: Path, threshold: float | None = None, threads: int = 0) -> None:
        self.model_file = model_file
        self.threshold = threshold
        self.threads = threads
        self._model: _Liveness | None = None
        self._version: str | None = None

    @property
    def model_version(self) -> str:
        self._opened()
        assert self._version is not None
        return self._version

    def __enter__(self) -> Self:
        check_files([self.model_file], "liveness model")
        addon = insightface_module("addons.liveness")
        try:
            threshold = addon.validate_threshold(
                addon.DEFAULT_THRESHOLD if self.threshold is None else self.threshold
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"liveness threshold: {exc}") from exc
        version = file_version(self.model_file)
        model: _Liveness = load(self.model_file, lambda: addon.Liveness(
            str(self.model_file),
            threshold=threshold,
            providers=PROVIDERS,
            sess_options=session_options(self.threads),
        ))
        if file_version(self.model_file) != version:  # as in InsightFaceEngine.__enter__
            raise ConfigError(f"{self.model_file} changed while loading")
        self._model, self._version = model, "insightface-liveness:" + version
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._model = None
        self._version = None

    def score(self, image: RGBImage, keypoints: Sequence[Point]) -> LivenessScore:
        """How live the face at ``keypoints`` (SCRFD's five, in image pixels) looks.

        Raises ``ValueError`` for an image that is not ``(h, w, 3)`` uint8 or for anything but
        five finite points, ``RuntimeError`` if the model is not open, if the points cannot be
        aligned (all in one place, or mirrored) or if the model answers something that is not
        a probability.
        """
        model = self._opened()
        bgr = np.ascontiguousarray(checked_rgb(image)[..., ::-1])  # the package reads BGR
        result = model.predict(bgr, np.asarray(keypoints, dtype=np.float32))
        if result["status"] != "ok":
            return LivenessScore(live_score=None, is_live=None, rejected=str(result["reason"]))
        live_score = result["live_score"]
        assert isinstance(live_score, float)
        return LivenessScore(live_score=live_score, is_live=bool(result["is_live"]))

    def _opened(self) -> _Liveness:
        if self._model is None:
            raise RuntimeError("the liveness model is not open; use it in a with block")
        return self._model
