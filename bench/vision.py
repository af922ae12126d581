"""What vision costs beyond the engine, how it scales over worker processes, and 1:N matching.

1. Latency on the embedded amqtt broker: the ``test/`` photos one at a time, in alternating rounds,
   a. bare: ``decode_image`` + ``engine.analyse`` in the service's own analysis (its worker
      process, with the default ``--processes 1``), then ``Gallery.match``: what the service
      does with a photo, without the bus;
   b. MQTT: the JPEG published to ``mirrors/{id}/frame``, until ``mirrors/{id}/events/face``;
   c. HTTP: ``POST /face`` (multipart ``face_image``) through the bridge, relayed over MQTT.
   Service, bridge and broker share this process and one CPU, as in ``mirrorhub up``; the
   clients run in a process of their own on another. All three must name the same faces.
2. A mirror's stream, same set-up: the 76 frames of ``video/hamilton`` one in flight to
   ``mirrors/{id}/frame`` (the service tracks the face across them), against the bare pipeline
   on every frame in the service's analysis, in alternating rounds; both must name the same
   faces on every frame (a frame of the clip is enrolled for its man).
3. Throughput on Mosquitto at 127.0.0.1:1883: one, then two vision workers, each a process of
   its own pinned to its own CPU (dlib's descriptor holds the GIL, so two in one process cannot
   scale), splitting frames through ``$share``; each of ``--mirrors`` mirrors keeps one frame
   in flight, so newest-wins drops nothing.
4. 1:N matching: ``Gallery.match`` over 1k, 10k and 100k random embeddings against ``M @ q``.

::

    .venv/bin/python bench/vision.py --rounds 3 --seconds 10 --mirrors 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import multiprocessing
import os
import re
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

# Run as a script, this file's directory heads sys.path, not the project's root: put the root
# first so that `bench`, which is not installed, imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import uvloop

from bench.vision_stream import bench_stream, print_stream
from bench.vision_workers import bench_workers, print_workers, vision_settings
from bridge.app import create_app
from bridge.server import serving
from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from schemas.errors import ServiceError
from schemas.vision import MIRROR_FACE_EVENT, MIRROR_FRAME, EnrolRequest, FaceEvent
from services.vision.faces import Faces
from services.vision.matcher import Gallery
from services.vision.service import run_vision

HOST = "127.0.0.1"
FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)

Names = list[str | None]  # the faces of one photo, largest first; None for nobody enrolled


@dataclass(frozen=True)
class Probe:
    """One pass over the photos by MQTT or HTTP; pickled to the client process."""

    bus: BusSettings
    http_port: int
    photos: tuple[tuple[str, bytes], ...]


@dataclass(frozen=True)
class Sample:
    latencies: list[float]  # seconds, one per photo, in the order of the photos
    names: list[Names]


# -- part 1, the clients, in their own process ---------------------------------------------------

async def _by_mqtt(probe: Probe) -> Sample:
    events: asyncio.Queue[FaceEvent] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await events.put(FaceEvent.model_validate_json(message.payload))

    sample = Sample([], [])
    async with Bus(probe.bus, role="mirror") as bus:
        await bus.subscribe(MIRROR_FACE_EVENT, collect, qos=0, mirror_id="bench")
        for _, data in probe.photos:
            start = time.perf_counter()
            await bus.publish(MIRROR_FRAME, data, qos=0, mirror_id="bench")
            event = await asyncio.wait_for(events.get(), 60)
            sample.latencies.append(time.perf_counter() - start)
            if event.error is not None or event.dropped:
                raise RuntimeError(f"frame event with error or drops: {event}")
            sample.names.append([face.name for face in event.faces])
    return sample


def multipart(name: str, data: bytes, port: int) -> bytes:
    """``POST /face`` with the photo as the ``face_image`` file field."""
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="face_image"; '
            f'filename="{name}"\r\nContent-Type: image/jpeg\r\n\r\n').encode()
    body += data + f"\r\n--{boundary}--\r\n".encode()
    return (f"POST /face HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


async def _by_http(probe: Probe) -> Sample:
    requests = [multipart(name, data, probe.http_port) for name, data in probe.photos]
    sample = Sample([], [])
    reader, writer = await asyncio.open_connection(HOST, probe.http_port)
    try:
        for request in requests:
            start = time.perf_counter()
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = _LENGTH.search(head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            sample.latencies.append(time.perf_counter() - start)
            reply = json.loads(body)
            if reply.get("result") != "success":
                raise RuntimeError(f"POST /face answered {head.split(b' ', 2)[1]!r}: {reply}")
            sample.names.append([f["name"] if f["known"] else None for f in reply["faces"]])
    finally:
        writer.close()
    return sample


def by_mqtt(probe: Probe) -> Sample:
    return asyncio.run(_by_mqtt(probe))


def by_http(probe: Probe) -> Sample:
    return asyncio.run(_by_http(probe))


# -- part 1, the servers, in this process --------------------------------------------------------

async def bare(faces: Faces, photos: tuple[tuple[str, bytes], ...]) -> Sample:
    """What the service does with a photo, minus the bus: decoded and analysed where the
    service analyses (its worker process, or its thread with ``--processes 0``), so that only
    the bus differs; matched here, as the service matches."""
    sample = Sample([], [])
    for _, data in photos:
        start = time.perf_counter()
        found = await faces.analysis.faces(data)  # largest first
        names = [faces.gallery.match(face.embedding).name for face in found]
        sample.latencies.append(time.perf_counter() - start)
        sample.names.append(names)
    return sample


async def enrol(faces: Faces, train: Path) -> int:
    """Every ``train/<name>/*`` photo, straight into the service; returns how many took."""
    enrolled = 0
    for photo in sorted(path for path in train.glob("*/*") if path.is_file()):
        try:
            await faces.enrol(EnrolRequest(name=photo.parent.name, image=photo.read_bytes()))
            enrolled += 1
        except ServiceError as exc:
            print(f"  not enrolled: {photo.relative_to(train)} ({exc.message})")
    return enrolled


async def bench_latency(
    faces: Faces, probe: Probe, rounds: int, loader: ProcessPoolExecutor
) -> list[Sample]:
    """A warm-up pass, then ``rounds`` of bare, MQTT, HTTP; one pooled sample per path."""
    loop = asyncio.get_running_loop()
    pooled = [Sample([], []) for _ in range(3)]
    for round_ in range(rounds + 1):
        samples = [await bare(faces, probe.photos),
                   await loop.run_in_executor(loader, by_mqtt, probe),
                   await loop.run_in_executor(loader, by_http, probe)]
        if any(sample.names != samples[0].names for sample in samples):
            raise RuntimeError(f"the paths name different faces: {[s.names for s in samples]}")
        if round_:  # round 0 warms up: first calls, imports, connections
            for into, sample in zip(pooled, samples, strict=True):
                into.latencies.extend(sample.latencies)
                into.names.extend(sample.names)
    return pooled


def print_latency(photos: tuple[tuple[str, bytes], ...], samples: list[Sample]) -> None:
    paths = ("bare decode+analyse+match", "MQTT frame -> face event", "HTTP POST /face")
    base_mean = statistics.fmean(samples[0].latencies)
    base_p50 = statistics.median(samples[0].latencies)
    print(f"{'path':<27} {'mean ms':>8} {'p50 ms':>7} {'x bare mean':>11} {'x bare p50':>10}")
    for path, sample in zip(paths, samples, strict=True):
        mean, p50 = statistics.fmean(sample.latencies), statistics.median(sample.latencies)
        print(f"{path:<27} {mean * 1e3:>8.1f} {p50 * 1e3:>7.1f} {mean / base_mean:>11.3f} "
              f"{p50 / base_p50:>10.3f}")
    print(f"\n{'photo (mean ms)':<24} {'KB':>5} {'faces':>5} {'bare':>6} {'MQTT':>6} {'HTTP':>6} "
          f"{'+MQTT':>6} {'+HTTP':>6}")
    for index, (name, data) in enumerate(photos):
        bare_ms, mqtt_ms, http_ms = (
            1e3 * statistics.fmean(s.latencies[index::len(photos)]) for s in samples)
        print(f"{name:<24} {len(data) / 1024:>5.0f} {len(samples[0].names[index]):>5} "
              f"{bare_ms:>6.0f} {mqtt_ms:>6.0f} {http_ms:>6.0f} {mqtt_ms - bare_ms:>6.1f} "
              f"{http_ms - bare_ms:>6.1f}")


# -- part 2, a mirror's stream, in part 1's set-up ----------------------------------------------

async def stream_part(faces: Faces, bus: BusSettings, args: argparse.Namespace,
                      loader: ProcessPoolExecutor) -> None:
    clip = sorted((args.faces / "video" / "hamilton").glob("*.jpg"))
    print(f"\n2. A mirror's stream on the same broker and service: the {len(clip)} frames of "
          f"video/hamilton, one in flight,\n   against the bare pipeline on every frame in the "
          f"service's analysis; {args.rounds} rounds after a warm-up round.")
    if len(clip) < 2:
        print(f"   skipped: no frames under {args.faces / 'video' / 'hamilton'}")
        return
    # Its man, from one frame of the clip, so that the frames name somebody.
    await faces.enrol(EnrolRequest(name="lin_manuel_miranda", image=clip[15].read_bytes()))
    frames = tuple(path.read_bytes() for path in clip)
    print_stream(*await bench_stream(faces, bus, frames, args.rounds, loader))


# -- part 4, 1:N matching ------------------------------------------------------------------------

def per_call(function: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        function()
    return (time.perf_counter() - start) / calls


def matching_cases(rng: np.random.Generator, size: int) -> list[Callable[[], object]]:
    """``Gallery.match``, the bare ``M @ q`` and numpy's whole nearest-row search, on ``size``
    random rows."""
    # dlib descriptors have norms about 1.4: 128 values of about 0.12.
    rows = (rng.standard_normal((size, 128)) * 0.12).astype(np.float32)
    query = (rng.standard_normal(128) * 0.12).astype(np.float32)
    gallery = Gallery(128, 0.6)
    gallery.add_many([f"s{index}" for index in range(size)], rows)
    norms = np.einsum("ij,ij->i", rows, rows)
    return [
        lambda: gallery.match(query),
        lambda: rows @ query,
        lambda: int(np.argmin(norms - 2.0 * (rows @ query))),
    ]


def bench_matching(sizes: list[int], rounds: int) -> list[str]:
    """The table's lines: per-call medians over ``rounds`` alternations of the three cases."""
    rng = np.random.default_rng(0)
    lines = [f"{'enrolled':>8} {'match us':>9} {'M @ q us':>9} {'x M @ q':>8} "
             f"{'numpy nearest us':>16} {'x nearest':>9}"]
    for size in sizes:
        cases = matching_cases(rng, size)
        # Enough calls for ~50 ms a round, from one calibration call of each case.
        calls = [max(1, int(0.05 / per_call(case, 1))) for case in cases]
        times: list[list[float]] = [[], [], []]
        for _ in range(rounds):
            for case, count, into in zip(cases, calls, times, strict=True):
                into.append(per_call(case, count))
        match, bare_op, nearest = (statistics.median(t) * 1e6 for t in times)
        lines.append(f"{size:>8} {match:>9.1f} {bare_op:>9.1f} {match / bare_op:>8.2f} "
                     f"{nearest:>16.1f} {match / nearest:>9.2f}")
    return lines


# -- the run -------------------------------------------------------------------------------------

async def main(args: argparse.Namespace) -> None:
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    all_cpus = sorted(os.sched_getaffinity(0))
    loader_cpus = all_cpus[1:2] or all_cpus
    os.sched_setaffinity(0, all_cpus[:1])  # before any thread starts: they inherit it
    photos = tuple((path.name, path.read_bytes())
                   for path in sorted((args.faces / "test").glob("*.jp*g")))
    spawn = multiprocessing.get_context("spawn")
    with tempfile.TemporaryDirectory(prefix="mirrorhub-bench-") as tmp:
        data = Path(tmp)
        print(f"1. One frame at a time on the embedded broker: {len(photos)} photos x "
              f"{args.rounds} rounds after a warm-up pass.\n   Service, bridge and broker on CPU "
              f"{all_cpus[:1]}, clients on {loader_cpus}.")
        with ProcessPoolExecutor(1, spawn, os.sched_setaffinity, (0, loader_cpus)) as loader:
            accounts = dict.fromkeys(("vision", "bridge", "bench"), "bench-secret")
            async with EmbeddedBroker(HOST, 0, accounts=accounts) as broker:
                bus = BusSettings(url=BrokerURL(HOST, broker.port, "bench", "bench-secret"),
                                  connect_timeout=5.0, request_timeout=60.0,
                                  namespace=f"bench-{uuid.uuid4().hex[:8]}/")
                # Each role on its own account: a role's client ids are its own.
                vision_bus, bridge_bus = (
                    replace(bus, url=bus.url.with_credentials(role, "bench-secret"))
                    for role in ("vision", "bridge"))
                async with run_vision(vision_bus, vision_settings(data, args.processes)) as faces, \
                        serving(create_app(bridge_bus), HOST, 0) as bridge:
                    print(f"   enrolled {await enrol(faces, args.faces / 'train')} train/ "
                          f"photos of {len(faces.gallery.subjects)} people\n")
                    port = bridge.servers[0].sockets[0].getsockname()[1]
                    probe = Probe(bus, port, photos)
                    print_latency(photos, await bench_latency(faces, probe, args.rounds, loader))
                    await stream_part(faces, bus, args, loader)

        print(f"\n3. Throughput on Mosquitto {HOST}:{args.mosquitto_port}: {args.mirrors} mirrors "
              f"with one frame in flight each, {args.seconds:g} s x {args.rounds} rounds;\n"
              f"   workers are processes pinned to CPUs {all_cpus[:2]}, the mirrors' client "
              f"is not pinned.")
        try:
            socket.create_connection((HOST, args.mosquitto_port), timeout=1.0).close()
        except OSError as exc:
            print(f"   skipped: nothing listens on {HOST}:{args.mosquitto_port} "
                  f"({exc.strerror or exc})")
        else:
            os.sched_setaffinity(0, all_cpus)
            frames = [frame for _, frame in photos]
            print_workers(await bench_workers(args, frames, data))
            os.sched_setaffinity(0, all_cpus[:1])

    print(f"\n4. 1:N matching of one 128-d query in a fresh process on CPU {all_cpus[:1]}, "
          f"BLAS on one thread; median of {args.rounds + 4} rounds.")
    # A fresh process: in this one, thread pools left by parts 1 to 3 (OpenBLAS's, OpenCV's)
    # made a 10k product take milliseconds instead of a fifth of one.
    os.environ["OPENBLAS_NUM_THREADS"] = "1"
    with ProcessPoolExecutor(1, spawn, os.sched_setaffinity, (0, all_cpus[:1])) as matcher:
        rows = matcher.submit(bench_matching, [1_000, 10_000, 100_000], args.rounds + 4)
        print("\n".join(rows.result()))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Vision: engine versus MQTT/HTTP, workers, "
                                                 "matching.")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of each comparison")
    parser.add_argument("--seconds", type=float, default=10.0,
                        help="timed seconds of frames per worker count and round")
    parser.add_argument("--mirrors", type=int, default=8, help="mirrors sending frames (part 3)")
    parser.add_argument("--processes", type=int, default=1,
                        help="analysis worker processes in parts 1 and 2 "
                             "(MIRRORHUB_VISION_PROCESSES; 0: a thread, as before session 2)")
    parser.add_argument("--mosquitto-port", type=int, default=1883,
                        help="Mosquitto on 127.0.0.1 that allows anonymous clients")
    parser.add_argument("--faces", type=Path, default=FACES,
                        help="photos: train/<name>/* to enrol, test/*.jpg to recognise, "
                             "video/hamilton/*.jpg to stream")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0 or args.mirrors < 1:
        parser.error("need --rounds >= 1, --seconds > 0, --mirrors >= 1")
    if not (args.faces / "train").is_dir() or not any((args.faces / "test").glob("*.jp*g")):
        parser.error(f"no train/ and test/*.jpg photos under {args.faces}")
    return args


if __name__ == "__main__":
    # The loop mirrorhub runs on (mirrorhub/cli.py).
    uvloop.run(main(parse_args()))
