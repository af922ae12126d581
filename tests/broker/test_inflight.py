"""QoS 1 publishes in flight when the connection drops are sent again on the next one: a burst
through a proxy that cuts the TCP connection half-way all arrives, and no publish fails."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from broker.client import Bus, Message
from broker.settings import BrokerURL, BusSettings
from tests.private_mosquitto import PrivateMosquitto
from tests.proxy import Proxy
from tests.support import unique

BURST = 500


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto(tmp_path) as broker:
        yield broker


@pytest.mark.parametrize("mqtt5", [False, True], ids=["mqtt3", "mqtt5"])
async def test_a_burst_survives_a_cut_connection(mosquitto: PrivateMosquitto,
                                                 mqtt5: bool) -> None:
    direct = BusSettings(BrokerURL("127.0.0.1", mosquitto.port), connect_timeout=5.0,
                         mqtt5=mqtt5)
    received: set[bytes] = set()
    deliveries = 0
    everything = asyncio.Event()

    async def count(message: Message) -> None:
        nonlocal deliveries
        deliveries += 1
        received.add(message.payload)
        if len(received) == BURST:
            everything.set()

    async with Proxy("127.0.0.1", mosquitto.port) as proxy, \
            Bus(direct, role="counter") as counter:
        await counter.subscribe_raw("burst/#", count, qos=1)
        through_proxy = replace(direct, url=replace(direct.url, port=proxy.port))
        async with Bus(through_proxy, client_id=unique("publisher"),
                       clean_session=False) as publisher:
            padding = b"." * 100
            proxy.cut_after(BURST * len(padding) // 2)  # about half-way through the burst
            await asyncio.gather(*(
                publisher.publish_raw(f"burst/{number % 7}", b"%04d" % number + padding, qos=1,
                                  wait=5)
                for number in range(BURST)))  # none raises
            assert proxy.cut_done.is_set() and publisher.connections == 2
            async with asyncio.timeout(15):
                await everything.wait()
    assert len(received) == BURST  # duplicates allowed at QoS 1, losses not
    assert deliveries >= BURST


async def test_a_connection_lost_while_its_callbacks_run_is_made_again_at_once(
        mosquitto: PrivateMosquitto) -> None:
    """A service's first on-connect callback publishes its status and waits for the PUBACK;
    the broker dies meanwhile. The Bus connects again as soon as the broker is back (before:
    only once that wait timed out, 10 s) and runs every callback again, so one registered
    after the status (vision's gallery resync) runs on the new connection."""
    settings = BusSettings(BrokerURL("127.0.0.1", mosquitto.port), connect_timeout=5.0)
    bus = Bus(settings, role="callbacks")
    seen: list[tuple[str, int]] = []
    restarts: list[asyncio.Task[None]] = []
    killed = 0.0

    async def restart() -> None:
        await asyncio.sleep(0.3)
        await asyncio.to_thread(mosquitto.start)

    async def status() -> None:
        nonlocal killed
        seen.append(("status", bus.connections))
        if len(seen) == 1:
            mosquitto.kill()  # the PUBACK of what follows never comes on this connection
            killed = asyncio.get_running_loop().time()
            restarts.append(asyncio.create_task(restart()))
        await bus.publish_raw("status/callbacks", "online", qos=1, retain=True, wait=10)

    async def after() -> None:
        seen.append(("after", bus.connections))

    bus.on_connect(status)
    bus.on_connect(after)
    async with bus:
        async with asyncio.timeout(8):
            while ("after", 2) not in seen:
                await asyncio.sleep(0.02)
        assert asyncio.get_running_loop().time() - killed < 5
    await asyncio.gather(*restarts)
    assert seen == [("status", 1), ("status", 2), ("after", 2)]
