"""What the insightface engine and the liveness add-on share: importing the package, loading
one of its models from a local file, and naming that file by its contents.

insightface is an optional extra (``make insightface``; docs/vision.md). It is imported only
when a model opens, so the dlib engine runs where it is not installed. Every model is loaded
from a path under the operator's control with the CPU provider and nothing else: the package's
download helpers (``download=True``, ``ensure_addon``) are never called, and a ``.onnx`` path
keeps ``get_model`` from looking in ``~/.insightface``.
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from schemas.errors import ConfigError

PROVIDERS = ["CPUExecutionProvider"]

INSTALL_HINT = (
    "install the insightface extra with `make insightface` (or pip install "
    "'mirrorhub[insightface]', then sh deploy/headless-opencv.sh PYTHON to put the headless "
    "OpenCV build back)"
)


def insightface_module(name: str) -> Any:
    """``insightface.<name>``, or a :class:`ConfigError` saying how to install the extra."""
    try:
        return importlib.import_module(f"insightface.{name}")
    except ImportError as exc:
        raise ConfigError(f"the insightface package is not installed: {INSTALL_HINT}") from exc


def session_options(threads: int) -> Any:
    """onnxruntime options for one model: ``threads`` intra-op threads (0: one per core)."""
    ort = importlib.import_module("onnxruntime")
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only: onnxruntime's notices are not ours
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return options


def check_files(paths: Sequence[Path], what: str) -> None:
    """A :class:`ConfigError` naming every one of ``paths`` that is not an ``.onnx`` file."""
    misnamed = [str(path) for path in paths if path.suffix != ".onnx"]
    if misnamed:
        # get_model reads any other name as a pack to look up (and fetch) under ~/.insightface.
        raise ConfigError(f"{what} file(s) must be named *.onnx: {', '.join(misnamed)}")
    missing = [str(path) for path in paths if not path.is_file()]
    if missing:
        raise ConfigError(
            f"{what} file(s) missing: {', '.join(missing)} (models are never downloaded; copy "
            "the files there or configure their names)"
        )


def file_version(path: Path) -> str:
    """``<stem>@<first 12 hex digits of the file's SHA-256>``: a new file is a new version."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return f"{path.stem}@{digest.hexdigest()[:12]}"


def load(path: Path, loader: Callable[[], Any]) -> Any:
    """What ``loader`` returns for ``path``; any failure inside the package becomes ours.

    onnxruntime raises its own, undocumented exception types for a file that is not a model,
    and insightface asserts on shapes it does not expect, so everything is caught here.
    """
    try:
        return loader()
    except Exception as exc:
        raise ConfigError(f"{path} is not a loadable ONNX model for insightface: {exc}") from exc
