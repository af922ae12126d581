"""What the indexed fan-out (broker/fanout.py) buys: a fleet coming online on the embedded broker.

a. our embedded broker (:class:`broker.server.EmbeddedBroker`: amqtt with the indexed table,
   the plugins and the shedding);
b. amqtt 0.12.1's own ``Broker``, no plugins, anonymous clients, its table handing out copies
   when walked and nothing else changed: the bare operation. (As it ships, mirrors connecting
   at once break its walk, "dictionary changed size during iteration", and it drops them.)

Each runs in a child process of its own, on the same listener config. The bench (the clients,
in this process) first publishes a retained display for every mirror, as the messaging service
does; then N mirrors connect, each subscribing to its own display and face-event topics and
waiting for its retained display; then one face event is sent to each mirror. It prints the
connect rate and the delivery rate of each broker and the ratio a/b from one run::

    .venv/bin/python -m bench.broker_fanout --mirrors 100 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import aiomqtt
from amqtt.broker import Broker

from broker.fanout import Snapshots
from broker.server import EmbeddedBroker

HOST = "127.0.0.1"
ACCOUNTS = {"svc": "svc-secret"}
CONCURRENT_CONNECTS = 50  # mirrors coming online at once


@dataclass(frozen=True)
class Rates:
    connects: float  # mirrors online (connected, subscribed, retained display in hand) a second
    deliveries: float  # face events delivered a second


async def _serve(ours: bool, pipe: Connection) -> None:
    if ours:
        async with EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker:
            pipe.send(broker.port)
            await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
        return
    bare = _SnapshotBroker({"listeners": {"default": {"type": "tcp", "bind": f"{HOST}:0"}},
                   "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin":
                               {"allow_anonymous": True}}})
    await bare.start()
    server = bare._servers["default"].instance  # amqtt exposes no public accessor
    pipe.send(server.sockets[0].getsockname()[1])
    await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    await bare.shutdown()


class _SnapshotBroker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's own broker, its table walked over copies (broker.fanout.Snapshots) and nothing
    else changed: the bare operation."""

    def __init__(self, config: dict[str, Any]) -> None:
        super().__init__(config)
        self._subscriptions = Snapshots()


def _broker_process(ours: bool, pipe: Connection) -> None:
    asyncio.run(_serve(ours, pipe))


@contextlib.contextmanager
def broker(ours: bool) -> Iterator[int]:
    here, there = multiprocessing.Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_broker_process, args=(ours, there), daemon=True)
    process.start()
    try:
        yield int(here.recv())
    finally:
        here.send("stop")
        process.join(15)
        if process.is_alive():
            process.kill()


def _client(port: int, name: str) -> aiomqtt.Client:
    return aiomqtt.Client(HOST, port, username="svc", password="svc-secret", identifier=name,
                          timeout=60)


async def _online(port: int, n: int, stack: contextlib.AsyncExitStack,
                  gate: asyncio.Semaphore) -> aiomqtt.Client:
    """Mirror ``n`` connected, subscribed, and its retained display in hand."""
    async with gate:
        mirror = await stack.enter_async_context(_client(port, f"mirror-{n}"))
        await mirror.subscribe([(f"mirrors/m{n}/display", 1), (f"mirrors/m{n}/face_event", 0)])
        async for message in mirror.messages:
            if message.topic.matches(f"mirrors/m{n}/display"):
                break
    return mirror


async def _run(port: int, mirrors: int) -> Rates:
    async with _client(port, "messaging") as messaging:
        for n in range(mirrors):
            await messaging.publish(f"mirrors/m{n}/display", b"{}", qos=1, retain=True)
        async with contextlib.AsyncExitStack() as stack:
            gate = asyncio.Semaphore(CONCURRENT_CONNECTS)
            start = time.perf_counter()
            clients = await asyncio.gather(*(_online(port, n, stack, gate)
                                             for n in range(mirrors)))
            connected = time.perf_counter() - start

            async def face_event(n: int) -> None:
                async for message in clients[n].messages:
                    if message.topic.matches(f"mirrors/m{n}/face_event"):
                        return

            start = time.perf_counter()
            waiting = [asyncio.create_task(face_event(n)) for n in range(mirrors)]
            for n in range(mirrors):
                await messaging.publish(f"mirrors/m{n}/face_event", b"{}", qos=0)
            await asyncio.gather(*waiting)
            delivered = time.perf_counter() - start
    return Rates(mirrors / connected, mirrors / delivered)


def measure(ours: bool, mirrors: int) -> Rates:
    with broker(ours) as port:
        return asyncio.run(_run(port, mirrors))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mirrors", type=int, nargs="+", default=[100, 1000])
    args = parser.parse_args()
    print(f"{'mirrors':>7}  {'broker':<9} {'online/s':>9} {'events/s':>9}")
    for mirrors in args.mirrors:
        ours, bare = measure(True, mirrors), measure(False, mirrors)
        for name, rates in (("ours", ours), ("amqtt", bare)):
            print(f"{mirrors:>7}  {name:<9} {rates.connects:>9.0f} {rates.deliveries:>9.0f}")
        print(f"{mirrors:>7}  {'a/b':<9} {ours.connects / bare.connects:>9.2f} "
              f"{ours.deliveries / bare.deliveries:>9.2f}")


if __name__ == "__main__":
    main()
