"""What the MQTT hop costs: ``GET /whoami`` through the bridge versus the same work in-process.

Two apps answer ``GET /whoami`` with ``Authorization: Bearer <token>`` and the same JSON:

a. the real bridge (:func:`bridge.app.create_app`), which relays the token over MQTT to the real
   auth service on ``svc/auth/verify`` and waits for the reply;
b. a one-route Starlette app that calls ``accounts.verify`` on the very same
   :class:`~services.auth.accounts.Accounts` object: same JWT decode, same database, no MQTT.

Both are served by uvicorn in this process and loaded with the same bounded number of requests at
the same concurrency. The ratio of throughputs a/b, measured in one run, is the share of the
in-process speed the bridge keeps. It runs on the embedded amqtt broker and on Mosquitto at
127.0.0.1:1883 (skipped, saying why, when nothing listens there)::

    .venv/bin/python bench/bridge.py --requests 2000 --concurrency 32
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing
import os
import re
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

# Run as a script, this file's directory heads sys.path and this module would shadow the
# `bridge` package; drop that entry before the project is imported.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != _HERE]

from starlette.applications import Starlette  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import JSONResponse  # noqa: E402
from starlette.routing import Route  # noqa: E402

from bridge.app import create_app  # noqa: E402
from bridge.server import serving  # noqa: E402
from broker.errors import ServiceError  # noqa: E402
from broker.server import EmbeddedBroker  # noqa: E402
from broker.settings import BrokerURL, BusSettings  # noqa: E402
from schemas.auth import LoginRequest, RegisterRequest, VerifyRequest  # noqa: E402
from services.auth.accounts import Accounts  # noqa: E402
from services.auth.config import AuthSettings  # noqa: E402
from services.auth.service import run_auth  # noqa: E402

HOST = "127.0.0.1"
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


@dataclass(frozen=True)
class Load:
    """One bounded load run against ``GET /whoami`` on ``HOST:port``; pickled to the loader."""

    port: int
    token: str
    requests: int
    concurrency: int
    warmup: int


@dataclass(frozen=True)
class Sample:
    """One timed run: wall time, each request's latency in seconds, and failed answers."""

    elapsed: float
    latencies: list[float]
    errors: int


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
        pooled = [latency for s in samples for latency in s.latencies]
        cuts = statistics.quantiles(pooled, n=100, method="inclusive")
        return cls(statistics.median(rates), (min(rates), max(rates)), cuts[49] * 1e3,
                   cuts[98] * 1e3, sum(s.errors for s in samples))


# -- the load generator (runs in its own process) ------------------------------------------------

async def exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """One request on a kept-alive connection: the status code and the body."""
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = _LENGTH.search(head)
    body = await reader.readexactly(int(length.group(1))) if length else b""
    return int(head.split(b" ", 2)[1]), body


def whoami_request(load: Load) -> bytes:
    return (f"GET /whoami HTTP/1.1\r\nHost: {HOST}:{load.port}\r\n"
            f"Authorization: Bearer {load.token}\r\n\r\n").encode()


async def _drive(load: Load, count: int) -> Sample:
    request = whoami_request(load)
    tickets: Iterator[int] = iter(range(count))  # shared: each worker takes the next request
    latencies: list[float] = []
    errors = 0

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, load.port)
        try:
            for _ in tickets:
                start = time.perf_counter()
                status, body = await exchange(reader, writer, request)
                latencies.append(time.perf_counter() - start)
                errors += status != 200 or b'"success"' not in body
        finally:
            writer.close()

    start = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(min(load.concurrency, max(count, 1))):
            group.create_task(worker())
    return Sample(time.perf_counter() - start, latencies, errors)


def run_load(load: Load) -> Sample:
    """Warm up, then time ``load.requests`` requests over ``load.concurrency`` connections."""
    asyncio.run(_drive(load, load.warmup))
    return asyncio.run(_drive(load, load.requests))


# -- the servers (run in this process) -----------------------------------------------------------

def direct_app(accounts: Accounts) -> Starlette:
    """Case b: the bridge's ``/whoami`` answer, computed in-process without MQTT."""

    async def whoami(request: Request) -> JSONResponse:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return JSONResponse({"result": "fail", "type": "whoami"}, status_code=401)
        try:
            reply = await accounts.verify(VerifyRequest(token=token.strip()))
        except ServiceError as exc:
            return JSONResponse({"result": "fail", "type": "whoami", "message": exc.message},
                                status_code=401)
        return JSONResponse({"result": "success", "type": "whoami", "username": reply.username})

    return Starlette(routes=[Route("/whoami", whoami, methods=["GET"])])


def auth_settings(data_dir: Path) -> AuthSettings:
    return AuthSettings(
        data_dir=data_dir, database_url=f"sqlite://{data_dir / 'auth.sqlite3'}", jwt_keys=None,
        token_ttl=3600, reset_ttl=600, smtp_url=None, mail_from="bench@localhost",
        argon2_memory_kib=1024, argon2_time_cost=1,
    )


async def bench_broker(
    url: BrokerURL, args: argparse.Namespace, loader: ProcessPoolExecutor
) -> tuple[Result, Result]:
    """Start auth, bridge and the direct app on ``url``; load a, then b; return both results."""
    bus = BusSettings(url=url, connect_timeout=5.0)
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="mirrorhub-bench-") as tmp:
        async with run_auth(bus, auth_settings(Path(tmp))) as accounts:
            await accounts.register(RegisterRequest(username="bench", password="bench-pass",
                                                    email="bench@example.org"))
            login = await accounts.login(LoginRequest(username="bench", password="bench-pass"))
            async with (
                serving(create_app(bus), HOST, 0) as bridged,
                serving(direct_app(accounts), HOST, 0) as direct,
            ):
                loads = [Load(server.servers[0].sockets[0].getsockname()[1], login.token,
                              args.requests, args.concurrency, args.warmup)
                         for server in (bridged, direct)]
                bodies: set[bytes] = set()
                for load in loads:
                    reader, writer = await asyncio.open_connection(HOST, load.port)
                    status, body = await exchange(reader, writer, whoami_request(load))
                    writer.close()
                    if status != 200:
                        raise RuntimeError(f"/whoami answered {status}: {body!r}")
                    bodies.add(body)
                if len(bodies) != 1:
                    raise RuntimeError(f"a and b answer differently: {sorted(bodies)}")
                # Rounds alternate a and b so that drift (other jobs on the machine, a shared
                # broker) weighs on both cases alike.
                samples: list[list[Sample]] = [[], []]
                for _ in range(args.rounds):
                    for load, runs in zip(loads, samples):
                        runs.append(await loop.run_in_executor(loader, run_load, load))
    return Result.of(samples[0]), Result.of(samples[1])


def reachable(address: tuple[str, int]) -> bool:
    try:
        socket.create_connection(address, timeout=1.0).close()
    except OSError:
        return False
    return True


COLUMNS = f"{'broker':<10} {'case':<25} {'req/s':>6} {'min-max req/s':>13} " \
          f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}"


def print_rows(broker: str, a: Result, b: Result) -> None:
    for case, r in (("a bridge -> MQTT -> auth", a), ("b in-process Starlette", b)):
        spread = f"{r.spread[0]:.0f}-{r.spread[1]:.0f}"
        print(f"{broker:<10} {case:<25} {r.rps:>6.0f} {spread:>13} {r.p50_ms:>7.1f} "
              f"{r.p99_ms:>7.1f} {r.errors:>6}")
    print(f"{broker:<10} {'throughput ratio a/b':<25} {a.rps / b.rps:>6.2f}", flush=True)
    if a.errors or b.errors:
        # Topics are fixed, so on a shared broker another auth service answers too: first wins.
        print(f"{broker:<10} failed answers: is another mirrorhub auth service on this broker?")


async def main(args: argparse.Namespace) -> None:
    print(f"{args.rounds} rounds of a then b, each {args.requests} requests after "
          f"{args.warmup} warm-up, {args.concurrency} connections; req/s is the median round\n")
    print(COLUMNS)
    # The loader gets its own process (spawned, since this one holds threads and a running loop)
    # so the servers keep this event loop to themselves; a raw asyncio client rather than httpx
    # keeps the loader far from saturating its core, so the servers, not it, set the pace.
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) >= 2:
        # Servers (with their SQLite thread) on one core, the loader on another: without this the
        # scheduler moves them about and the in-process case swings by a third from run to run.
        os.sched_setaffinity(0, cpus[:1])
        print(f"servers pinned to CPU {cpus[0]}, load generator to CPU {cpus[1]}")
    spawn = multiprocessing.get_context("spawn")
    # aiomqtt warns on every publish once more than 10 await their PUBACK, as they do here.
    logging.getLogger("mqtt").setLevel(logging.ERROR)
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn, initializer=os.sched_setaffinity,
                             initargs=(0, cpus[1:2] or cpus)) as loader:
        if args.broker in ("both", "embedded"):
            accounts = {"bench": "bench-secret"}
            async with EmbeddedBroker(HOST, 0, accounts=accounts) as broker:
                url = BrokerURL(HOST, broker.port, "bench", "bench-secret")
                print_rows("embedded", *await bench_broker(url, args, loader))
        if args.broker in ("both", "mosquitto"):
            if reachable((HOST, args.mosquitto_port)):
                url = BrokerURL(HOST, args.mosquitto_port, "bench", "x")
                print_rows("mosquitto", *await bench_broker(url, args, loader))
            else:
                print(f"mosquitto  skipped: nothing listens on {HOST}:{args.mosquitto_port}")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per case")
    parser.add_argument("--concurrency", type=int, default=32, help="open connections")
    parser.add_argument("--warmup", type=int, default=100, help="untimed requests first")
    parser.add_argument("--rounds", type=int, default=3, help="alternations of a and b")
    parser.add_argument("--mosquitto-port", type=int, default=1883,
                        help="Mosquitto on 127.0.0.1 allowing anonymous clients")
    parser.add_argument("--broker", choices=("both", "embedded", "mosquitto"), default="both")
    args = parser.parse_args()
    if args.requests < 2 or args.concurrency < 1 or args.warmup < 0 or args.rounds < 1:
        parser.error("need --requests >= 2, --concurrency >= 1, --warmup >= 0, --rounds >= 1")
    return args


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
