"""Decoding an upload and finding its faces, off the event loop: in a thread, or in processes.

dlib holds the GIL while it detects and embeds (tens of milliseconds a face), so in a thread it
still stalls every coroutine of the process. In ``mirrorhub up`` those are the bridge's, auth's
and messaging's too: beside one mirror sending 5 frames a second, a cheap endpoint's p99 went
from 3 ms to 78 ms. With ``VisionSettings.processes`` above 0 the work runs in that many spawned
worker processes instead, each opening its own engine from the settings; the service's own
engine then only names the model and answers in-process uses.

A worker ends with the service's process, however that ends. On a clean stop the pool is shut
down. When the process is killed (``kill -9``, the OOM killer) nothing of it runs, and a worker
waiting on its call queue would wait forever, since it holds a write end of that queue itself;
so each worker asks Linux for SIGKILL when its parent dies (``PR_SET_PDEATHSIG``), and watches
its parent pid once a second where that is not available. multiprocessing's resource tracker,
which "spawn" starts beside the pool, exits by itself once the last process holding its pipe is
gone. "spawn" rather than "forkserver": the fork server would be one more process to outlive
us, and forking from it still copies its state; "fork" copies the running event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from schemas.errors import ConfigError, ServiceError
from schemas.vision import VisionError
from services.vision.config import VisionSettings, make_engine
from services.vision.engine import DetectedFace, FaceEngine, RGBImage
from services.vision.images import ImageLimits, decode_image
from services.vision.insightface_liveness import InsightFaceLiveness
from services.vision.sightings import Followed, Plan, follow
from services.vision.spoof import SpoofModel

Analysed = tuple[RGBImage, list[DetectedFace]]


def largest(faces: list[DetectedFace], field: str) -> DetectedFace:
    """The largest of ``faces`` (the engines list them largest first); ``no_face`` naming the
    upload ``field`` when there is none."""
    if not faces:
        raise ServiceError(VisionError.NO_FACE, "No face found in the image", field)
    return faces[0]


def analyse_image(engine: FaceEngine, limits: ImageLimits, data: bytes) -> Analysed:
    """Decode ``data`` and find its faces, largest first."""
    image = decode_image(data, limits)
    faces = engine.analyse(image)
    faces.sort(key=lambda face: face.box.width * face.box.height, reverse=True)
    return image, faces


class Analysis:
    """``await analysis(data)``: :func:`analyse_image` in a thread with ``engine``, or in the
    worker processes of ``executor`` (see :func:`worker_pool`). ``spoof`` is the optional
    anti-spoofing model mirrors' frames are judged by in a thread; the workers open their own
    from the settings."""

    def __init__(self, engine: FaceEngine, limits: ImageLimits,
                 executor: ProcessPoolExecutor | None = None,
                 spoof: SpoofModel | None = None) -> None:
        self.engine = engine
        self.limits = limits
        self._executor = executor
        self.spoof = spoof

    async def __call__(self, data: bytes) -> Analysed:
        if self._executor is None:
            return await asyncio.to_thread(analyse_image, self.engine, self.limits, data)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _in_worker, self.limits, data)

    async def faces(self, data: bytes) -> list[DetectedFace]:
        """The faces alone: from a worker, the decoded image (megabytes) does not travel back."""
        if self._executor is None:
            return (await self(data))[1]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _faces_in_worker, self.limits, data)

    async def follow(self, data: bytes, plan: Plan) -> Followed:
        """A mirror's frame seen with its tracks in mind (:func:`follow_image`)."""
        if self._executor is None:
            return await asyncio.to_thread(follow_image, self.engine, self.limits, data, plan,
                                           self.spoof)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, _follow_in_worker, self.limits, data,
                                          plan)


def follow_image(engine: FaceEngine, limits: ImageLimits, data: bytes, plan: Plan,
                 spoof: SpoofModel | None = None) -> Followed:
    """Decode ``data`` and follow its faces (:func:`services.vision.sightings.follow`)."""
    return follow(engine, decode_image(data, limits), plan, spoof)


def open_spoof_model(path: Path | None) -> InsightFaceLiveness | None:
    """The anti-spoofing model at ``path`` opened (None: no model). Blocking; a
    :class:`ConfigError` of one line when the file is missing or is not such a model."""
    if path is None:
        return None
    model = InsightFaceLiveness(path)
    try:
        return model.__enter__()  # closed when the process ends, as the engine of a worker
    except ConfigError as exc:
        # onnxruntime's messages run over several lines; the first names what is wrong.
        raise ConfigError(f"MIRRORHUB_LIVENESS_MODEL: {str(exc).splitlines()[0]}") from exc


# -- in each worker process ----------------------------------------------------------------------

_worker_engine: FaceEngine | None = None
_worker_spoof: SpoofModel | None = None
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
_PARENT_POLL = 1.0  # seconds


def _end_with(parent: int) -> None:
    """Exit when process ``parent`` does (see the module docstring).

    Linux sends the signal when the *thread* that started this process ends, not the process:
    the pool starts its workers from the thread that first submits work (the event loop's) or
    from its manager thread, both of which live as long as the pool.
    """
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)
    threading.Thread(target=_watch_parent, args=(parent,), name="parent-watch",
                     daemon=True).start()


def _watch_parent(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(_PARENT_POLL)
    os._exit(1)  # no clean-up to do: the engine holds nothing outside this process


def _open_worker(kind: str, insightface_dir: Path | None, parent: int,
                 spoof_model: Path | None) -> None:
    global _worker_engine, _worker_spoof
    _end_with(parent)
    engine = make_engine(kind, insightface_dir)
    engine.__enter__()  # closed when the process ends
    _worker_engine = engine
    _worker_spoof = open_spoof_model(spoof_model)


def _in_worker(limits: ImageLimits, data: bytes) -> Analysed:
    assert _worker_engine is not None, "worker started without its engine"
    return analyse_image(_worker_engine, limits, data)


def _faces_in_worker(limits: ImageLimits, data: bytes) -> list[DetectedFace]:
    return _in_worker(limits, data)[1]


def _follow_in_worker(limits: ImageLimits, data: bytes, plan: Plan) -> Followed:
    assert _worker_engine is not None, "worker started without its engine"
    return follow_image(_worker_engine, limits, data, plan, _worker_spoof)


def _ready() -> str:
    assert _worker_engine is not None
    return _worker_engine.model_version


@contextlib.asynccontextmanager
async def worker_pool(settings: VisionSettings) -> AsyncIterator[ProcessPoolExecutor]:
    """``settings.processes`` worker processes with their engines open (models loaded) before
    the context is entered."""
    # spawn, not fork: the parent runs an event loop and threads that a fork would copy mid-air.
    executor = ProcessPoolExecutor(settings.processes,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_open_worker,
                                   initargs=(settings.engine, settings.insightface_dir,
                                             os.getpid(), settings.liveness_model))
    try:
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(executor, _ready)
                               for _ in range(settings.processes)))
        yield executor
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
