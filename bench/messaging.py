"""What delivering a message costs: ``POST /send_message`` until the receiver's mirror shows it,
against inserting the same rows into the messaging database directly.

a. The real bridge relays each send over MQTT (QoS 1) to the real messaging service, which stores
   it and pushes ``mirrors/{mirror_id}/display`` to the mirror the receiver stands at (made
   "present" by one ``events/vision/recognized``); a message counts once that display arrives;
b. ``Message.create`` of the same rows, at the same concurrency, into a fresh messaging database
   of the same kind: the database work a send cannot do without;
c. the same, each insert followed by the rest of the database work of a send displayed on its
   own: the receiver's unread list (``Messages.unread``) and the message marked read
   (``Messages.mark_read``), in-process. The fair baseline of a: the same work without the bus.

The ratios a/b and a/c of their throughputs, from one run, are the shares of the bare insert
rate and of the same-work rate that the whole path keeps; a also gives each message's latency
from send to display. The CPU this process (every server but Mosquitto and PostgreSQL) spends a
message in a and in c, and their ratio, say the same with less of the wall clock, which moves
with whatever else the machine runs. It runs on the embedded amqtt broker with SQLite, then on
Mosquitto at 127.0.0.1:1883 with PostgreSQL at 127.0.0.1:5432 if both listen there::

    .venv/bin/python bench/messaging.py --messages 300 --concurrency 16 --rounds 2
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

# Run as a script, this file's directory heads sys.path, not the project's root: put the root
# first so that `bench`, which is not installed, imports.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import uvloop

from bench.bridge_hop import (
    HOST,
    Result,
    Sample,
    checked_load,
    exchange,
    load_parser,
    on_connections,
    pin_cpus,
    print_case,
    print_cases,
    print_ratio,
)
from bridge.app import create_app
from bridge.server import serving
from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.service import persistent_client_id
from broker.settings import BrokerURL, BusSettings
from schemas.auth import RegisterRequest
from schemas.messaging import MIRROR_DISPLAY, Display
from schemas.vision import VISION_RECOGNIZED, Recognized
from services.auth.config import AuthSettings
from services.auth.service import run_auth
from services.database import open_database
from services.messaging.config import MessagingSettings
from services.messaging.models import Message as MessageRow
from services.messaging.service import run_messaging

SENDER, RECEIVER, MIRROR = "ann", "bob", "bench-mirror"
ROLES = ("auth", "messaging", "bridge", "mirror")  # one broker account each, as `mirrorhub up`
DISPLAY_WAIT = 10.0  # seconds a sent message may take to reach the mirror before it counts failed


@dataclass(frozen=True)
class Backend:
    """Where one half of the run happens: a broker and a database server."""

    name: str
    broker_port: int
    postgres: str | None  # PostgreSQL DSN without the database name; None for SQLite files
    namespace: str  # other mirrorhub stacks on a shared broker neither hear nor answer ours

    def bus(self, role: str) -> BusSettings:
        url = BrokerURL(HOST, self.broker_port, role, f"{role}-bench-secret")
        return BusSettings(url=url, connect_timeout=5.0, namespace=self.namespace)


@dataclass(frozen=True)
class Load:
    """``messages`` sends to ``POST /send_message`` at ``HOST:port``; pickled to the loader."""

    bus: BusSettings  # the mirror's, for its display
    port: int
    messages: int
    concurrency: int
    warmup: int

    def request(self, content: str) -> bytes:
        body = json.dumps({"sender_username": SENDER, "receiver_username": RECEIVER,
                           "content": content}).encode()
        return (f"POST /send_message HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                ).encode() + body


# -- case a, the sender and the mirror, in their own process -------------------------------------

class Mirror:
    """The receiver's mirror: when each awaited message first appears on its display."""

    def __init__(self) -> None:
        self.present = asyncio.Event()
        self._awaited: dict[str, asyncio.Future[float]] = {}

    def expect(self, content: str) -> asyncio.Future[float]:
        future = asyncio.get_running_loop().create_future()
        self._awaited[content] = future
        return future

    async def on_display(self, message: Message) -> None:
        now = time.perf_counter()
        display = Display.model_validate_json(message.payload)
        if display.user == RECEIVER:
            self.present.set()
        # The new message heads the list; looking at all of them costs little and would still
        # count a message whose own display were lost but a later one carried it.
        for shown in display.messages:
            future = self._awaited.pop(shown.content, None)
            if future is not None and not future.done():
                future.set_result(now)


async def _drive(load: Load, mirror: Mirror, count: int, tag: str) -> Sample:
    latencies: list[float] = []
    arrivals: list[float] = []
    errors = 0

    async def step(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, n: int) -> None:
        nonlocal errors
        content = f"{tag} {n}"
        request, shown = load.request(content), mirror.expect(content)
        start = time.perf_counter()
        status, body = await exchange(reader, writer, request)
        if status != 200 or b'"success"' not in body:
            errors += 1
            return
        try:
            arrived = await asyncio.wait_for(shown, DISPLAY_WAIT)
        except TimeoutError:
            errors += 1
            return
        latencies.append(arrived - start)
        arrivals.append(arrived)

    start = await on_connections(load.port, load.concurrency, count, step)
    # Until the last display arrived, not until the last HTTP answer (which usually follows it).
    return Sample(max(arrivals, default=time.perf_counter()) - start, latencies, errors)


async def _session(load: Load) -> Sample:
    mirror = Mirror()
    tag = uuid.uuid4().hex[:8]  # this round's contents differ from those of earlier rounds
    async with Bus(load.bus, role="mirror") as bus:
        await bus.subscribe(MIRROR_DISPLAY, mirror.on_display, qos=1, mirror_id=MIRROR)
        # After the first round the retained display already shows the receiver; seeing them
        # again changes nothing, and keeps them present.
        seen = Recognized(mirror_id=MIRROR, names=[RECEIVER], unknown=0, at=datetime.now(UTC),
                          trusted=[RECEIVER])
        await bus.publish(VISION_RECOGNIZED, seen, qos=1)
        await asyncio.wait_for(mirror.present.wait(), DISPLAY_WAIT)
        if load.warmup:
            await _drive(load, mirror, load.warmup, f"warm-{tag}")
        return await _drive(load, mirror, load.messages, tag)


def run_load(load: Load) -> Sample:
    """One round of case a: the mirror shows the receiver, a warm-up, then the timed sends."""
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    return asyncio.run(_session(load))


# -- case b, bare inserts, in this process -------------------------------------------------------

async def insert_rows(count: int, concurrency: int, room: int | None) -> Sample:
    """``count`` rows like those a send stores, by ``concurrency`` tasks, into the database
    open in this task's tortoise context; with a display ``room``, each insert is followed by
    the rest of the database work a send shown at once costs (case c)."""
    tickets: Iterator[int] = iter(range(count))
    tag = uuid.uuid4().hex[:8]
    latencies: list[float] = []

    async def worker() -> None:
        for number in tickets:
            start = time.perf_counter()
            # The bridge makes up a message_id like this one when the client sends none.
            row = await MessageRow.create(message_id=uuid.uuid4().hex, sender=SENDER,
                                          receiver=RECEIVER, content=f"{tag} {number}")
            if room is not None:
                # The display: the receiver's unread list, then this message marked read, as
                # Messages.unread and Messages.mark_read do it.
                await MessageRow.filter(receiver=RECEIVER, read_at=None).order_by(
                    "-id").limit(room)
                await MessageRow.filter(id__in=[row.id], read_at=None).update(
                    read_at=datetime.now(UTC))
            latencies.append(time.perf_counter() - start)

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(concurrency, count)):
            group.create_task(worker())
    return Sample(time.perf_counter() - start, latencies, 0)


async def bare_round(url: str, args: argparse.Namespace, room: int | None) -> Sample:
    async with open_database(url, "messaging", "services.messaging.models",
                             "services.messaging.migrations"):
        if args.warmup:
            await insert_rows(args.warmup, args.concurrency, room)
        return await insert_rows(args.messages, args.concurrency, room)


async def count_rows(url: str) -> int:
    async with open_database(url, "messaging", "services.messaging.models",
                             "services.messaging.migrations"):
        return await MessageRow.all().count()


# -- the servers, in this process ----------------------------------------------------------------

@contextlib.asynccontextmanager
async def scratch_database(backend: Backend, data: Path, name: str) -> AsyncIterator[str]:
    """The URL of a fresh, empty database: a file in ``data``, or a PostgreSQL database that
    is dropped again afterwards."""
    if backend.postgres is None:
        yield f"sqlite://{data / name}.sqlite3"
        return
    db_name = f"mirrorhub_bench_{name}_{uuid.uuid4().hex[:10]}"
    admin_dsn = f"{backend.postgres}/test"  # any database will do to create one
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await admin.close()
    try:
        yield f"{backend.postgres}/{db_name}"
    finally:
        admin = await asyncpg.connect(admin_dsn)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        finally:
            await admin.close()


@contextlib.asynccontextmanager
async def serving_stack(
    backend: Backend, data: Path, auth_url: str, messaging_url: str, in_flight: int
) -> AsyncIterator[int]:
    """Auth (with the two users), messaging and the bridge, as ``mirrorhub up`` runs them;
    yields the bridge's port."""
    auth = AuthSettings(
        data_dir=data, database_url=auth_url, jwt_keys=None, token_ttl=3600, reset_ttl=600,
        smtp_url=None, mail_from="bench@localhost", argon2_memory_kib=1024, argon2_time_cost=1,
    )
    # A long idle_after keeps the receiver present all run; an instance of its own keeps the
    # sends of this run and of any other on a shared broker in separate persistent sessions.
    messaging = MessagingSettings(data_dir=data, database_url=messaging_url,
                                  idle_after=3600.0, instance=uuid.uuid4().hex[:12],
                                  display_messages=display_room(in_flight))
    async with run_auth(backend.bus("auth"), auth) as accounts:
        # Now: once messaging's database is open it is this task's tortoise context, and
        # auth's models would not find their own there.
        for name in (SENDER, RECEIVER):
            await accounts.register(RegisterRequest(username=name, password="bench-pass",
                                                    email=f"{name}@example.org"))
        async with (
            run_messaging(backend.bus("messaging"), messaging),
            serving(create_app(backend.bus("bridge")), HOST, 0) as bridge,
        ):
            yield bridge.servers[0].sockets[0].getsockname()[1]
    # Connecting once more with a clean session makes the broker forget the persistent one,
    # which Mosquitto would otherwise keep (and store) for good.
    bus = backend.bus("messaging")
    async with Bus(bus, client_id=persistent_client_id(bus, f"messaging-{messaging.instance}")):
        pass


def display_room(in_flight: int) -> int:
    """Room on the display for every message in flight: a burst beyond the room shows only its
    newest (the rest stay unread), and this measures delivery, not that policy."""
    return max(10, 4 * in_flight)


async def on_cpu(spent: list[float], work: Awaitable[Sample]) -> Sample:
    """``work``'s sample; the CPU seconds this process (the servers' CPU) spent meanwhile are
    added to ``spent``."""
    start = time.process_time()
    sample = await work
    spent.append(time.process_time() - start)
    return sample


async def bench_backend(
    backend: Backend, args: argparse.Namespace, loader: ProcessPoolExecutor
) -> tuple[Result, Result, Result, list[float]]:
    """The stack on ``backend`` and a database each for b and c; alternating rounds of a, b
    and c. Returns their results and, for a and c, the servers' median CPU microseconds a
    message."""
    loop = asyncio.get_running_loop()
    room = display_room(args.concurrency)
    with tempfile.TemporaryDirectory(prefix="mirrorhub-bench-") as tmp:
        data = Path(tmp)
        async with (
            scratch_database(backend, data, "auth") as auth_url,
            scratch_database(backend, data, "messaging") as messaging_url,
            scratch_database(backend, data, "bare") as bare_url,
            scratch_database(backend, data, "same") as same_url,
        ):
            async with serving_stack(backend, data, auth_url, messaging_url,
                                   args.concurrency) as port:
                load = Load(backend.bus("mirror"), port, args.messages, args.concurrency,
                            args.warmup)
                # Alternating rounds spread drift (other jobs, a shared broker) over the cases.
                samples: tuple[list[Sample], list[Sample], list[Sample]] = ([], [], [])
                cpu: tuple[list[float], list[float]] = ([], [])
                for _ in range(args.rounds):
                    samples[0].append(await on_cpu(
                        cpu[0], loop.run_in_executor(loader, run_load, load)))
                    samples[1].append(await bare_round(bare_url, args, None))
                    samples[2].append(await on_cpu(cpu[1], bare_round(same_url, args, room)))
            # Each case wrote into its own database (tortoise picks it by context variable),
            # and every message a saw displayed was stored.
            sent = args.rounds * (args.messages + args.warmup)
            shown = sum(len(sample.latencies) for sample in samples[0])
            stored = [await count_rows(url) for url in (messaging_url, bare_url, same_url)]
            if not shown <= stored[0] <= sent or stored[1] != sent or stored[2] != sent:
                raise RuntimeError(f"{sent} rows sent and inserted, {shown} timed ones shown, "
                                   f"but stored {stored[0]} (a), {stored[1]} (b) and "
                                   f"{stored[2]} (c)")
    per_message = 1e6 / (args.messages + args.warmup)  # each round sends its warm-up too
    cpu_us = [statistics.median(spent) * per_message for spent in cpu]
    return Result.of(samples[0]), Result.of(samples[1]), Result.of(samples[2]), cpu_us


def print_rows(backend: str, a: Result, b: Result, c: Result, cpu_us: list[float]) -> None:
    print_cases(backend, 18, ("a send -> MQTT -> display", "b Message.create"), a, b,
                spread_width=11)
    print_case(backend, 18, "c create+unread+mark read", c, spread_width=11)
    print_ratio(backend, 18, "throughput ratio a/c", a.rps / c.rps)
    for case, spent in zip(("a", "c"), cpu_us, strict=True):
        print(f"{backend:<18} {case + ' server CPU µs/message':<26} {spent:>6.0f}")
    print_ratio(backend, 18, "server CPU ratio c/a", cpu_us[1] / cpu_us[0])


def listening(port: int) -> str | None:
    """None when something listens on ``HOST:port``, else why not."""
    try:
        socket.create_connection((HOST, port), timeout=1.0).close()
    except OSError as exc:
        return f"nothing listens on {HOST}:{port} ({exc.strerror or exc})"
    return None


async def main(args: argparse.Namespace) -> None:
    loader_cpus = pin_cpus()
    print(f"{args.rounds} rounds of a then b, each {args.messages} messages after {args.warmup} "
          f"warm-up, {args.concurrency} at a time;\nrate is the median round, a's latency from "
          f"POST to the display showing the message.\nServers on CPU "
          f"{sorted(os.sched_getaffinity(0))}, sender and mirror on {loader_cpus}.\n")
    print(f"{'backend':<18} {'case':<26} {'msg/s':>6} {'min-max/s':>11} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6}")
    # The sender is a process of its own, as in bench/bridge_hop.py, so that it never sets the pace.
    spawn = multiprocessing.get_context("spawn")
    namespace = f"bench-{uuid.uuid4().hex[:8]}/"
    with ProcessPoolExecutor(1, spawn, os.sched_setaffinity, (0, loader_cpus)) as loader:
        if args.backend in ("both", "embedded"):
            accounts = {role: f"{role}-bench-secret" for role in ROLES}
            async with EmbeddedBroker(HOST, 0, accounts=accounts) as broker:
                backend = Backend("embedded+sqlite", broker.port, None, namespace)
                print_rows(backend.name, *await bench_backend(backend, args, loader))
        if args.backend in ("both", "mosquitto"):
            absent = listening(args.mosquitto_port) or listening(args.postgres_port)
            if absent:
                print(f"{'mosquitto+postgres':<18} skipped: {absent}")
                return
            backend = Backend("mosquitto+postgres", args.mosquitto_port,
                              f"postgres://postgres@{HOST}:{args.postgres_port}", namespace)
            print_rows(backend.name, *await bench_backend(backend, args, loader))


def parse_args() -> argparse.Namespace:
    parser = load_parser("POST /send_message to the mirror's display versus bare inserts.",
                         "messages", 300, "messages in flight", 16, 20, 2)
    parser.add_argument("--postgres-port", type=int, default=5432,
                        help="PostgreSQL on 127.0.0.1, database test, trust auth for postgres")
    parser.add_argument("--backend", choices=("both", "embedded", "mosquitto"), default="both")
    return checked_load(parser, "messages")


if __name__ == "__main__":
    # The loop mirrorhub runs on (mirrorhub/cli.py), for both cases alike.
    uvloop.run(main(parse_args()))
