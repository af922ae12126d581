"""Part 2 of bench/vision.py: a mirror's stream, the frames of ``video/hamilton`` one in flight
to ``mirrors/{id}/frame``, against the bare pipeline run on every frame in the service's own
analysis (its worker process), both in alternating rounds of one run."""

from __future__ import annotations

import asyncio
import statistics
import time
from concurrent.futures import Executor
from dataclasses import dataclass

from broker.client import Bus, Message
from broker.settings import BusSettings
from schemas.vision import MIRROR_FACE_EVENT, MIRROR_FRAME, FaceEvent
from services.vision.faces import Faces

Names = list[str | None]  # the faces of one frame, largest first; None for nobody enrolled


@dataclass(frozen=True)
class Stream:
    """One pass over the clip by a mirror; pickled to the client process."""

    bus: BusSettings
    mirror_id: str
    frames: tuple[bytes, ...]


@dataclass(frozen=True)
class Pass:
    seconds: float  # from the first frame sent (or analysed) to the last event (or result)
    names: list[Names]


def play(stream: Stream) -> Pass:
    """Each frame sent when the event of the one before has come back (a process target)."""
    return asyncio.run(_play(stream))


async def _play(stream: Stream) -> Pass:
    events: asyncio.Queue[FaceEvent] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await events.put(FaceEvent.model_validate_json(message.payload))

    names: list[Names] = []
    async with Bus(stream.bus, role="mirror") as bus:
        await bus.subscribe(MIRROR_FACE_EVENT, collect, qos=0, mirror_id=stream.mirror_id)
        await asyncio.sleep(0.2)  # the subscription stands before the first frame
        start = time.perf_counter()
        for frame in stream.frames:
            await bus.publish(MIRROR_FRAME, frame, qos=0, mirror_id=stream.mirror_id)
            event = await asyncio.wait_for(events.get(), 60)
            if event.error is not None or event.dropped:
                raise RuntimeError(f"frame event with error or drops: {event}")
            names.append([face.name for face in event.faces])
        return Pass(time.perf_counter() - start, names)


async def every_frame(faces: Faces, frames: tuple[bytes, ...]) -> Pass:
    """The bare pipeline on every frame: decode, detect, landmarks and descriptor for each face
    in the service's analysis (the same worker process its frames go to), then the match."""
    names: list[Names] = []
    start = time.perf_counter()
    for frame in frames:
        found = await faces.analysis.faces(frame)
        names.append([faces.gallery.match(face.embedding).name for face in found])
    return Pass(time.perf_counter() - start, names)


async def bench_stream(faces: Faces, bus: BusSettings, frames: tuple[bytes, ...], rounds: int,
                       loader: Executor) -> tuple[list[float], list[float]]:
    """A warm-up round, then ``rounds`` of bare and stream: frames/s of each, by round. Each
    stream round is a mirror of its own, so no round starts with the last one's tracks."""
    loop = asyncio.get_running_loop()
    bare_rates: list[float] = []
    stream_rates: list[float] = []
    for round_ in range(rounds + 1):
        bare = await every_frame(faces, frames)
        stream = Stream(bus, f"stream-{round_}", frames)
        played = await loop.run_in_executor(loader, play, stream)
        if played.names != bare.names:
            differ = [i for i, (a, b) in enumerate(zip(played.names, bare.names, strict=True))
                      if a != b]
            raise RuntimeError(f"the stream names other faces than the bare pipeline on frames "
                               f"{differ}: {[played.names[i] for i in differ]} against "
                               f"{[bare.names[i] for i in differ]}")
        if round_:  # round 0 warms up
            bare_rates.append(len(frames) / bare.seconds)
            stream_rates.append(len(frames) / played.seconds)
    return bare_rates, stream_rates


def print_stream(bare: list[float], stream: list[float]) -> None:
    base = statistics.median(bare)
    print(f"{'path':<32} {'frames/s':>8} {'min-max':>11} {'x bare':>7}")
    for path, rates in (("bare pipeline on every frame", bare),
                        ("stream -> face events", stream)):
        median = statistics.median(rates)
        print(f"{path:<32} {median:>8.1f} {min(rates):>5.1f}-{max(rates):<5.1f} "
              f"{median / base:>7.2f}")
