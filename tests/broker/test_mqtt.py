"""The MQTT 3.1.1 connection itself: framing, topic matching, and the wire against real brokers."""

from __future__ import annotations

import asyncio
import os

import pytest

from broker.client import Bus, Message
from broker.mqtt import (
    PUBLISH,
    Connection,
    ConnectRefused,
    Incoming,
    Will,
    _remaining_length,
    packet,
    topic_matches,
)
from tests.conftest import Backend, isolated
from tests.support import unique


@pytest.mark.parametrize("size", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152])
def test_remaining_length_round_trips_at_every_boundary(size: int) -> None:
    framed = bytearray(packet(PUBLISH, bytes(size)))
    header = len(framed) - size
    assert _remaining_length(framed, 1) == (size, header)
    for cut in range(1, header):  # the length's own bytes not all here yet
        assert _remaining_length(framed[:cut], 1) is None


def test_a_stream_cut_anywhere_yields_the_same_messages() -> None:
    async def run() -> list[Incoming]:
        received: list[Incoming] = []
        connection = Connection(received.append)
        stream = b"".join(
            packet(PUBLISH | retain, b"\x00\x03a/b" + payload)
            for retain, payload in [(0, b"one"), (1, b"two" * 100), (0, b"")]
        )
        for index in range(len(stream)):  # one byte at a time
            connection.data_received(stream[index:index + 1])
        return received

    received = asyncio.run(run())
    assert [(m.topic, m.payload, m.retain) for m in received] == [
        ("a/b", b"one", False), ("a/b", b"two" * 100, True), ("a/b", b"", False)]


@pytest.mark.parametrize(("topic_filter", "topic", "matches"), [
    ("a/b", "a/b", True),
    ("a/+", "a/b", True),
    ("a/+", "a/b/c", False),
    ("a/#", "a", True),
    ("a/#", "a/b/c", True),
    ("#", "a/b", True),
    ("+/+", "a/b", True),
    ("+", "a/b", False),
    ("a/b", "a/c", False),
    ("$share/group/svc/+/x", "svc/auth/x", True),
    ("#", "$SYS/broker", False),
    ("ns/mirrors/+/display", "ns/mirrors/hall/display", True),
])
def test_topic_matching(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches


async def connect(backend: Backend, received: list[Incoming], *, password: str | None = None,
                  will: Will | None = None) -> Connection:
    url = backend.bus("test").url
    connection = Connection(received.append)
    await connection.open(url.host, url.port, client_id=unique("raw"), username=url.username,
                          password=password or url.password, will=will, clean_session=True,
                          keepalive=30, timeout=5.0)
    return connection


async def wait_for(received: list[Incoming], count: int) -> None:
    async with asyncio.timeout(10):
        while len(received) < count:
            await asyncio.sleep(0.01)


async def test_large_and_small_messages_cross_intact(backend: Backend) -> None:
    own = isolated(backend)
    topic = f"{own.namespace}raw/{unique('t')}"
    received: list[Incoming] = []
    listener = await connect(own, received)
    sender = await connect(own, [])
    try:
        await listener.subscribe(topic, 1)
        payloads = [b"", b"x", os.urandom(300_000), "héllo ☃".encode(), os.urandom(20_000)]
        for index, payload in enumerate(payloads):
            await sender.publish(topic, payload, qos=index % 2)
        await wait_for(received, len(payloads))
        assert [m.payload for m in received] == payloads
        assert {m.topic for m in received} == {topic}
    finally:
        listener.close()
        sender.close()


async def test_wrong_credentials_are_refused_with_the_code(backend: Backend) -> None:
    if backend.name != "embedded+sqlite":
        pytest.skip("the system Mosquitto admits anonymous clients")
    with pytest.raises(ConnectRefused) as caught:
        await connect(backend, [], password="wrong")
    assert caught.value.code in (4, 5)


async def test_the_will_is_published_on_abort_and_not_on_close(backend: Backend) -> None:
    own = isolated(backend)
    topic = f"{own.namespace}raw/{unique('will')}"
    received: list[Incoming] = []
    watcher = await connect(own, received)
    try:
        await watcher.subscribe(topic, 1)
        polite = await connect(own, [], will=Will(topic, "polite", qos=1))
        polite.close()
        vanished = await connect(own, [], will=Will(topic, b"vanished", qos=1))
        vanished.abort()
        await wait_for(received, 1)
        await asyncio.sleep(0.3)
        assert [m.payload for m in received] == [b"vanished"]
    finally:
        watcher.close()


async def test_keepalive_pings_keep_an_idle_connection_open(backend: Backend) -> None:
    own = isolated(backend)
    url = own.bus("test").url
    connection = Connection(lambda message: None)
    await connection.open(url.host, url.port, client_id=unique("idle"), username=url.username,
                          password=url.password, will=None, clean_session=True, keepalive=1,
                          timeout=5.0)
    try:
        await asyncio.sleep(3.5)  # brokers drop a client silent for 1.5 keep-alive periods
        assert not connection.closed.done()
        await connection.subscribe(f"{own.namespace}still/here", 1)
    finally:
        connection.close()


async def test_a_busy_bus_stops_reading_instead_of_queueing(backend: Backend) -> None:
    own = isolated(backend)
    release = asyncio.Event()
    running, most, done = 0, 0, 0

    async def slow(message: Message) -> None:
        nonlocal running, most, done
        running += 1
        most = max(most, running)
        await release.wait()
        running -= 1
        done += 1

    async with (
        Bus(own.bus("test"), role="slow", concurrency=3) as listener,
        Bus(own.bus("test"), role="fast") as sender,
    ):
        await listener.subscribe_raw("busy/topic", slow, qos=1)
        for number in range(20):
            await sender.publish_raw("busy/topic", str(number), qos=1)
        await asyncio.sleep(0.3)
        assert most == 3 and done == 0
        release.set()
        async with asyncio.timeout(10):
            while done < 20:
                await asyncio.sleep(0.01)
        assert most == 3
