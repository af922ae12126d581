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
