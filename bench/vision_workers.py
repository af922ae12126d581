"""Part 2 of bench/vision.py: one, then two vision workers, each a process of its own pinned
to its own CPU, splitting the frames of several mirrors through ``$share`` on Mosquitto."""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import statistics
import uuid
from collections import Counter
from dataclasses import dataclass
from multiprocessing.synchronize import Event
from pathlib import Path

import uvloop

from broker.client import Bus, Message
from broker.settings import BrokerURL, BusSettings
from schemas.vision import MIRROR_FACE_EVENT, MIRROR_FRAME, FaceEvent
from services.vision.config import VisionSettings
from services.vision.service import run_vision

HOST = "127.0.0.1"


def vision_settings(data: Path, processes: int = 0) -> VisionSettings:
    """The service's defaults, on one SQLite file in ``data``; ``processes`` as
    ``MIRRORHUB_VISION_PROCESSES``."""
    return VisionSettings(data_dir=data, database_url=f"sqlite://{data / 'vision.sqlite3'}",
                          threshold=None, processes=processes)


@dataclass(frozen=True)
class Worker:
    """What a worker process needs (VisionSettings itself holds an unpicklable mappingproxy)."""

    bus: BusSettings
    data: Path
    cpu: int


def serve_worker(worker: Worker, ready: Event, stop: Event) -> None:
    """One vision worker on one CPU until ``stop`` is set (a process target)."""
    os.sched_setaffinity(0, {worker.cpu})
    logging.getLogger("mqtt").setLevel(logging.ERROR)

    async def serve() -> None:
        async with run_vision(worker.bus, vision_settings(worker.data)):
            ready.set()
            await asyncio.to_thread(stop.wait)

    uvloop.run(serve())


@dataclass(frozen=True)
class Throughput:
    rate: float  # analysed frames per second within the timed window
    workers: Counter[str]  # frames per worker
    dropped: int
    errors: int


async def drive(bus: Bus, queues: dict[str, asyncio.Queue[FaceEvent]], photos: list[bytes],
                seconds: float) -> Throughput:
    """Each mirror sends a frame and waits for its event until ``seconds`` have passed."""
    loop = asyncio.get_running_loop()
    timed: list[FaceEvent] = []
    start = loop.time()

    async def mirror(index: int, mirror_id: str) -> None:
        while True:
            frame = photos[index % len(photos)]
            index += 1
            await bus.publish(MIRROR_FRAME, frame, qos=0, mirror_id=mirror_id)
            event = await asyncio.wait_for(queues[mirror_id].get(), 60)
            if loop.time() - start > seconds:
                return
            timed.append(event)

    async with asyncio.TaskGroup() as group:
        for index, mirror_id in enumerate(queues):
            group.create_task(mirror(index, mirror_id))
    return Throughput(len(timed) / seconds if seconds else 0.0,
                      Counter(event.worker for event in timed),
                      sum(event.dropped for event in timed),
                      sum(event.error is not None for event in timed))


async def with_workers(count: int, bus: BusSettings, data: Path,
                       mirror: Bus, queues: dict[str, asyncio.Queue[FaceEvent]],
                       photos: list[bytes], seconds: float) -> Throughput:
    """Start ``count`` worker processes, warm up, time ``seconds`` of frames, stop them."""
    spawn = multiprocessing.get_context("spawn")
    cpus = sorted(os.sched_getaffinity(0))
    stop = spawn.Event()
    processes = []
    try:
        # One after the other: they share the SQLite file, and each migrates it at start.
        for index in range(count):
            ready = spawn.Event()
            process = spawn.Process(target=serve_worker, daemon=True, args=(
                Worker(bus, data, cpus[index % len(cpus)]), ready, stop))
            process.start()
            processes.append(process)
            if not await asyncio.to_thread(ready.wait, 60):
                raise RuntimeError(f"vision worker {index} not ready in 60 s "
                                   f"(exit code {process.exitcode})")
        await drive(mirror, queues, photos, 0)  # one frame per mirror, untimed
        return await drive(mirror, queues, photos, seconds)
    finally:
        stop.set()
        for process in processes:
            await asyncio.to_thread(process.join, 30)
            if process.is_alive():
                process.terminate()


async def bench_workers(args: argparse.Namespace, photos: list[bytes],
                        data: Path) -> list[list[Throughput]]:
    """Alternating rounds of one and two workers on Mosquitto: results per worker count."""
    run = uuid.uuid4().hex[:8]
    bus = BusSettings(url=BrokerURL(HOST, args.mosquitto_port, "bench", "x"), connect_timeout=5.0,
                      namespace=f"bench-{run}/", shared_group=f"bench-vision-{run}")
    queues: dict[str, asyncio.Queue[FaceEvent]] = {
        f"m{index}": asyncio.Queue() for index in range(args.mirrors)}

    async def collect(message: Message) -> None:
        event = FaceEvent.model_validate_json(message.payload)
        await queues[event.mirror_id].put(event)

    results: list[list[Throughput]] = [[], []]
    async with Bus(bus, role="mirror") as mirror:
        await mirror.subscribe(MIRROR_FACE_EVENT, collect, qos=0)
        for _ in range(args.rounds):
            for count, into in ((1, results[0]), (2, results[1])):
                into.append(await with_workers(count, bus, data, mirror, queues, photos,
                                               args.seconds))
    return results


def print_workers(results: list[list[Throughput]]) -> None:
    print(f"{'workers':<8} {'frames/s':>8} {'min-max':>11} {'dropped':>7} {'errors':>6}  "
          f"frames per worker, by round")
    medians = []
    for count, runs in enumerate(results, 1):
        rates = [r.rate for r in runs]
        medians.append(statistics.median(rates))
        split = " ".join("/".join(str(n) for n in sorted(r.workers.values(), reverse=True))
                         for r in runs)
        print(f"{count:<8} {medians[-1]:>8.2f} {min(rates):>5.2f}-{max(rates):<5.2f} "
              f"{sum(r.dropped for r in runs):>7} {sum(r.errors for r in runs):>6}  {split}")
    print(f"{'ratio 2 workers / 1 worker':<27} {medians[1] / medians[0]:.2f}")
