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

A worker that dies (``kill -9``, the OOM killer, a crash in a decoder) breaks a
``ProcessPoolExecutor`` for good: every later call would fail while the service itself lives
on. :class:`WorkerPool` starts a new pool then; the calls that were running answer
``unavailable`` (503, try again) rather than being retried, since the image may be what killed
the worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import TypeVar

from schemas.envelope import ErrorCode
from schemas.errors import ConfigError, ServiceError
from schemas.vision import VisionError
from services.vision.config import VisionSettings, make_engine
from services.vision.engine import DetectedFace, FaceEngine, RGBImage
from services.vision.images import ImageLimits, decode_image
from services.vision.insightface_liveness import InsightFaceLiveness
from services.vision.sightings import Followed, Plan, follow
from services.vision.spoof import SpoofModel

log = logging.getLogger(__name__)

Analysed = tuple[RGBImage, list[DetectedFace]]
T = TypeVar("T")


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


class WorkerPool:
    """``settings.processes`` worker processes, replaced by new ones when one of them dies
    (see the module docstring). Enter it with :func:`worker_pool`."""

    def __init__(self, settings: VisionSettings) -> None:
        self.settings = settings
        self.restarts = 0  # how often a dead worker made it start a new pool
        self._executor = self._new()

    def _new(self) -> ProcessPoolExecutor:
        # spawn, not fork: the parent runs an event loop and threads that a fork would copy
        # mid-air.
        settings = self.settings
        return ProcessPoolExecutor(settings.processes,
                                   mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_open_worker,
                                   initargs=(settings.engine, settings.insightface_dir,
                                             os.getpid(), settings.liveness_model))

    async def ready(self) -> None:
        """Wait until every worker has its engine open (models loaded)."""
        await asyncio.gather(*(self.run(_ready) for _ in range(self.settings.processes)))

    async def run(self, func: Callable[..., T], *args: object) -> T:
        executor = self._executor
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, func, *args)
        except BrokenProcessPool as exc:
            if executor is self._executor:  # the first call to find it broken replaces it
                log.error("vision: a worker process died; starting new workers")
                self.restarts += 1
                self._executor = self._new()
                executor.shutdown(wait=False, cancel_futures=True)
            raise ServiceError(ErrorCode.UNAVAILABLE, "vision: a worker process died while "
                               "analysing; new workers are starting, try again") from exc

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


class Analysis:
    """``await analysis(data)``: :func:`analyse_image` in a thread with ``engine``, or in the
    worker processes of ``pool`` (see :func:`worker_pool`). ``spoof`` is the optional
    anti-spoofing model mirrors' frames are judged by in a thread; the workers open their own
    from the settings."""

    def __init__(self, engine: FaceEngine, limits: ImageLimits,
                 pool: WorkerPool | None = None, spoof: SpoofModel | None = None) -> None:
        self.engine = engine
        self.limits = limits
        self._pool = pool
        self.spoof = spoof

    async def __call__(self, data: bytes) -> Analysed:
        if self._pool is None:
            return await asyncio.to_thread(analyse_image, self.engine, self.limits, data)
        return await self._pool.run(_in_worker, self.limits, data)

    async def faces(self, data: bytes) -> list[DetectedFace]:
        """The faces alone: from a worker, the decoded image (megabytes) does not travel back."""
        if self._pool is None:
            return (await self(data))[1]
        return await self._pool.run(_faces_in_worker, self.limits, data)

    async def follow(self, data: bytes, plan: Plan) -> Followed:
        """A mirror's frame seen with its tracks in mind (:func:`follow_image`)."""
        if self._pool is None:
            return await asyncio.to_thread(follow_image, self.engine, self.limits, data, plan,
                                           self.spoof)
        return await self._pool.run(_follow_in_worker, self.limits, data, plan)


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
async def worker_pool(settings: VisionSettings) -> AsyncIterator[WorkerPool]:
    """``settings.processes`` worker processes with their engines open (models loaded) before
    the context is entered."""
    pool = WorkerPool(settings)
    try:
        await pool.ready()
        yield pool
    finally:
        pool.shutdown()
