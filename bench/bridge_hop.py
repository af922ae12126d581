"""What the MQTT hop costs: ``GET /whoami`` through the bridge versus the same work in-process.

a. The real bridge relays the bearer token over MQTT to the real auth service (``svc/auth/verify``);
b. a one-route Starlette app calls ``verify`` on the very same :class:`Accounts` object: same JWT
   decode, same database, no MQTT. Both answer the same JSON, checked byte for byte.

Both run under uvicorn in this process and take the same bounded load in alternating rounds; the
throughput ratio a/b, from one run, is the share of the in-process speed the bridge keeps. It
runs on the embedded amqtt broker, then on Mosquitto at 127.0.0.1:1883 if anything listens there::

    .venv/bin/python bench/bridge_hop.py --requests 2000 --concurrency 32 --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import socket
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import uvloop
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.app import create_app
from bridge.server import serving
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from schemas.auth import AuthError, LoginRequest, RegisterRequest, VerifyRequest
from schemas.errors import ServiceError
from services.auth.accounts import Accounts
from services.auth.config import AuthSettings
from services.auth.service import run_auth

HOST = "127.0.0.1"
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Load:
    """A bounded load on ``GET /whoami`` at ``HOST:port``; pickled to the loader process."""

    port: int
    token: str
    requests: int
    concurrency: int
    warmup: int

    def request(self) -> bytes:
        return (f"GET /whoami HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
                f"Authorization: Bearer {self.token}\r\n\r\n").encode()


@dataclass(frozen=True)
class Sample:
    elapsed: float  # wall seconds of the timed phase
    latencies: list[float]  # seconds, one per request
    errors: int  # answers other than 200 with "success"


@dataclass(frozen=True)
class Result:
    """One case over all rounds: the median round's throughput and the pooled latencies."""

    rps: float
    spread: tuple[float, float]
    p50_ms: float
    p99_ms: float
    errors: int

    @classmethod
    def of(cls, samples: list[Sample]) -> Result:
        rates = [len(s.latencies) / s.elapsed for s in samples]
        cuts = statistics.quantiles([t for s in samples for t in s.latencies], n=100,
                                    method="inclusive")
        return cls(statistics.median(rates), (min(rates), max(rates)), cuts[49] * 1e3,
                   cuts[98] * 1e3, sum(s.errors for s in samples))


# -- the load generator, in its own process ------------------------------------------------------

async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One request on a kept-alive connection: the status code and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return int(head.split(b" ", 2)[1]), body


Step = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[None]]


async def on_connections(port: int, connections: int, count: int, step: Step) -> float:
    """Run ``step(reader, writer, n)`` for each ``n`` below ``count`` over ``connections`` HTTP
    connections to ``HOST:port``, each taking the next ``n`` when it is free. Returns when all
    are done, with the ``time.perf_counter()`` at which they started."""
    tickets: Iterator[int] = iter(range(count))  # shared: each connection takes the next one

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for number in tickets:
                await step(reader, writer, number)
        finally:
            writer.close()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(connections, count)):
            group.create_task(worker())
    return start


async def _drive(load: Load, count: int) -> Sample:
    request = load.request()
    latencies: list[float] = []
    errors = 0

    async def step(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, _: int) -> None:
        nonlocal errors
        start = time.perf_counter()
        status, body = await exchange(reader, writer, request)
        latencies.append(time.perf_counter() - start)
        if status != 200 or b'"success"' not in body:
            errors += 1

    start = await on_connections(load.port, load.concurrency, count, step)
    return Sample(time.perf_counter() - start, latencies, errors)


def run_load(load: Load) -> Sample:
    """Warm up, then time ``load.requests`` requests over ``load.concurrency`` connections."""
    if load.warmup:
        asyncio.run(_drive(load, load.warmup))
    return asyncio.run(_drive(load, load.requests))


# -- the servers, in this process ----------------------------------------------------------------

def direct_app(accounts: Accounts) -> Starlette:
    """Case b: the bridge's ``/whoami`` answer, computed in-process without MQTT."""

    async def whoami(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        try:
            if scheme.lower() != "bearer" or not token.strip():
                raise ServiceError(AuthError.TOKEN_INVALID, "send Authorization: Bearer <token>")
            reply = await accounts.verify(VerifyRequest(token=token.strip()))
        except ServiceError as exc:
            return JSONResponse({"result": "fail", "type": "whoami", "message": exc.message},
                                status_code=401)
        return JSONResponse({"result": "success", "type": "whoami", "username": reply.username})

    return Starlette(routes=[Route("/whoami", whoami, methods=["GET"])])


async def check_same_answer(loads: list[Load]) -> None:
    """Refuse to compare unless a and b both succeed with byte-identical bodies."""
    bodies: set[bytes] = set()
    for load in loads:
        reader, writer = await asyncio.open_connection(HOST, load.port)
        status, body = await exchange(reader, writer, load.request())
        writer.close()
        if status != 200:
            raise RuntimeError(f"/whoami on port {load.port} answered {status}: {body!r}")
        bodies.add(body)
    if len(bodies) != 1:
        raise RuntimeError(f"a and b answer differently: {sorted(bodies)}")


async def bench_broker(
    url: BrokerURL, args: argparse.Namespace, loader: ProcessPoolExecutor
) -> tuple[Result, Result]:
    """Auth service, bridge and direct app on the broker at ``url``: the results of a and b."""
    # A namespace of its own keeps other mirrorhub stacks on a shared broker out of the way.
    bus = BusSettings(url=url, connect_timeout=5.0, namespace=f"bench-{uuid.uuid4().hex[:8]}/")
    # Each role on its own account, as in `mirrorhub up`: a role's client ids are its own.
    auth_bus, bridge_bus = (replace(bus, url=url.with_credentials(role, url.password or ""))
                            for role in ("auth", "bridge"))
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="mirrorhub-bench-") as tmp:
        data = Path(tmp)
        settings = AuthSettings(
            data_dir=data, database_url=f"sqlite://{data / 'auth.sqlite3'}", jwt_keys=None,
            token_ttl=3600, reset_ttl=600, smtp_url=None, mail_from="bench@localhost",
            argon2_memory_kib=1024, argon2_time_cost=1,
        )
        async with run_auth(auth_bus, settings) as accounts:
            await accounts.register(RegisterRequest(username="bench", password="bench-pass",
                                                    email="bench@example.org"))
            login = await accounts.login(LoginRequest(username="bench", password="bench-pass"))
            async with (
                serving(create_app(bridge_bus), HOST, 0) as bridged,
                serving(direct_app(accounts), HOST, 0) as direct,
            ):
                loads = [Load(server.servers[0].sockets[0].getsockname()[1], login.token,
                              args.requests, args.concurrency, args.warmup)
                         for server in (bridged, direct)]
                await check_same_answer(loads)
                # Alternating rounds spread drift (other jobs, a shared broker) over both cases.
                samples: tuple[list[Sample], list[Sample]] = ([], [])
                for _ in range(args.rounds):
                    for load, runs in zip(loads, samples, strict=True):
                        runs.append(await loop.run_in_executor(loader, run_load, load))
    return Result.of(samples[0]), Result.of(samples[1])


def print_case(label: str, width: int, case: str, r: Result, spread_width: int = 13) -> None:
    """One case's row: rate, spread, p50, p99, errors."""
    spread = f"{r.spread[0]:.0f}-{r.spread[1]:.0f}"
    print(f"{label:<{width}} {case:<26} {r.rps:>6.0f} {spread:>{spread_width}} "
          f"{r.p50_ms:>7.1f} {r.p99_ms:>7.1f} {r.errors:>6}")


def print_ratio(label: str, width: int, name: str, ratio: float) -> None:
    print(f"{label:<{width}} {name:<26} {ratio:>6.2f}", flush=True)


def print_cases(label: str, width: int, cases: tuple[str, str], a: Result, b: Result,
                spread_width: int = 13) -> None:
    """The rows of one backend: case a, case b (rate, spread, p50, p99, errors), and a/b."""
    for case, r in zip(cases, (a, b), strict=True):
        print_case(label, width, case, r, spread_width)
    print_ratio(label, width, "throughput ratio a/b", a.rps / b.rps)


def print_rows(broker: str, a: Result, b: Result) -> None:
    print_cases(broker, 10, ("a bridge -> MQTT -> auth", "b in-process Starlette"), a, b)


def pin_cpus() -> list[int]:
    """Pin this process (servers, SQLite thread) to one CPU; return a CPU for the loader.

    Unpinned on two cores, the in-process case swung by a third between rounds; pinned, ~10%.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return cpus
    os.sched_setaffinity(0, cpus[:1])
    return cpus[1:2]


async def main(args: argparse.Namespace) -> None:
    loader_cpus = pin_cpus()
    print(f"{args.rounds} rounds of a then b, each {args.requests} requests after {args.warmup} "
          f"warm-up on {args.concurrency} connections; req/s is the median round.\n"
          f"Servers on CPU {sorted(os.sched_getaffinity(0))}, load generator on {loader_cpus}.\n")
    print(f"{'broker':<10} {'case':<26} {'req/s':>6} {'min-max req/s':>13} {'p50 ms':>7} "
          f"{'p99 ms':>7} {'errors':>6}")
    # The loader is its own process (spawned: this one holds threads and a running loop) so the
    # servers have this event loop to themselves, and a raw asyncio client rather than httpx, so
    # it idles enough that the servers, not the loader, set the pace. Both cases share it.
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, spawn, os.sched_setaffinity, (0, loader_cpus)) as loader:
        if args.broker in ("both", "embedded"):
            accounts = dict.fromkeys(("auth", "bridge"), "bench-secret")
            async with EmbeddedBroker(HOST, 0, accounts=accounts) as broker:
                url = BrokerURL(HOST, broker.port, "bench", "bench-secret")
                print_rows("embedded", *await bench_broker(url, args, loader))
        if args.broker in ("both", "mosquitto"):
            try:
                socket.create_connection((HOST, args.mosquitto_port), timeout=1.0).close()
            except OSError as exc:
                print(f"mosquitto  skipped: nothing listens on {HOST}:{args.mosquitto_port} "
                      f"({exc.strerror or exc})")
                return
            url = BrokerURL(HOST, args.mosquitto_port, "bench", "x")
            print_rows("mosquitto", *await bench_broker(url, args, loader))


def load_parser(description: str, unit: str, count: int, in_flight: str, concurrency: int,
                warmup: int, rounds: int) -> argparse.ArgumentParser:
    """The options every bench here shares: ``--{unit}`` timed per round, ``--concurrency``,
    ``--warmup``, ``--rounds`` and the Mosquitto port; :func:`checked_load` checks them."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{unit}", type=int, default=count, help=f"timed {unit} per round")
    parser.add_argument("--concurrency", type=int, default=concurrency, help=in_flight)
    parser.add_argument("--warmup", type=int, default=warmup, help=f"untimed {unit} per round")
    parser.add_argument("--rounds", type=int, default=rounds, help="alternations of a and b")
    parser.add_argument("--mosquitto-port", type=int, default=1883,
                        help="Mosquitto on 127.0.0.1 that allows anonymous clients")
    return parser


def checked_load(parser: argparse.ArgumentParser, unit: str) -> argparse.Namespace:
    args = parser.parse_args()
    if (getattr(args, unit) < 2 or args.concurrency < 1 or args.warmup < 0
            or args.rounds < 1):
        parser.error(f"need --{unit} >= 2, --concurrency >= 1, --warmup >= 0, --rounds >= 1")
    return args


def parse_args() -> argparse.Namespace:
    parser = load_parser("Bridge over MQTT versus in-process /whoami.", "requests", 2000,
                         "open connections", 32, 100, 3)
    parser.add_argument("--broker", choices=("both", "embedded", "mosquitto"), default="both")
    return checked_load(parser, "requests")


if __name__ == "__main__":
    # The loop mirrorhub runs on (mirrorhub/cli.py), for both cases alike.
    uvloop.run(main(parse_args()))
