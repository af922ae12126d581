"""The Bus's MQTT connection (paho-mqtt on the asyncio loop) against real brokers: messages of
every size, keep-alive both ways, Last Wills, pushing back when busy, and what paho leaves open
when a handshake fails."""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from paho.mqtt.client import topic_matches_sub

from broker.client import Bus, Message
from broker.protocol import Will, topic_matches
from broker.settings import BrokerURL, BusSettings
from schemas.errors import BusUnavailable
from tests.conftest import Backend, isolated
from tests.proxy import Proxy


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
    ("a/+/c", "a//c", True),
    ("+/b", "/b", True),
    ("$share/group/svc/+/x", "svc/auth/x", True),
    ("#", "$SYS/broker", False),
    ("+/broker", "$SYS/broker", False),
    ("$SYS/#", "$SYS/broker", True),
    ("ns/mirrors/+/display", "ns/mirrors/hall/display", True),
])
def test_topic_matching_agrees_with_paho(topic_filter: str, topic: str, matches: bool) -> None:
    assert topic_matches(topic_filter, topic) is matches
    unshared = topic_filter.split("/", 2)[2] if topic_filter.startswith("$share/") else topic_filter
    assert topic_matches_sub(unshared, topic) is matches


class Inbox:
    """Every message a Bus receives on the topics it subscribed to here."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self._arrived = asyncio.Event()

    async def collect(self, message: Message) -> None:
        self.messages.append(message)
        self._arrived.set()

    async def wait_for(self, count: int, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while len(self.messages) < count:
                self._arrived.clear()
                await self._arrived.wait()


@pytest.fixture
async def own(backend: Backend) -> AsyncIterator[Backend]:
    yield isolated(backend)


async def test_large_and_small_messages_cross_intact(own: Backend) -> None:
    inbox = Inbox()
    async with Bus(own.bus("test"), role="listener") as listener, \
            Bus(own.bus("test"), role="sender") as sender:
        await listener.subscribe_raw("raw/t", inbox.collect, qos=1)
        payloads = [b"", b"x", os.urandom(300_000), "héllo ☃".encode(), os.urandom(20_000)]
        for index, payload in enumerate(payloads):
            await sender.publish_raw("raw/t", payload, qos=index % 2)
        await inbox.wait_for(len(payloads))
        assert [m.payload for m in inbox.messages] == payloads
        assert {m.topic for m in inbox.messages} == {"raw/t"}


async def test_wrong_credentials_are_refused_at_once(backend: Backend) -> None:
    if backend.name != "embedded+sqlite":
        pytest.skip("the system Mosquitto admits anonymous clients")
    settings = backend.bus("test")
    settings = replace(settings, url=replace(settings.url, password="wrong"))
    started = asyncio.get_running_loop().time()
    with pytest.raises(BusUnavailable, match=r"refused the credentials: .*(password|authori)"):
        async with Bus(settings):
            pass
    assert asyncio.get_running_loop().time() - started < 2


async def test_the_will_is_published_when_the_connection_breaks_not_on_close(
    own: Backend,
) -> None:
    inbox = Inbox()
    async with Bus(own.bus("test"), role="watcher") as watcher, \
            Proxy(own.broker_host, own.broker_port) as proxy:
        await watcher.subscribe_raw("raw/will", inbox.collect, qos=1)
        async with Bus(own.bus("test"), will=Will("raw/will", "polite", qos=1)):
            pass
        cut = replace(own.bus("test"), url=replace(own.bus("test").url, port=proxy.port))
        async with Bus(cut, will=Will("raw/will", b"vanished", qos=1)) as vanished:
            await proxy.cut()  # no DISCONNECT reaches the broker: it must send the Will
            await inbox.wait_for(1)
            async with asyncio.timeout(10):
                while vanished.connections < 2:  # and the Bus came back by itself
                    await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert [m.payload for m in inbox.messages] == [b"vanished"]


async def test_keepalive_pings_keep_an_idle_connection_open(own: Backend) -> None:
    inbox = Inbox()
    async with Bus(replace(own.bus("test"), keepalive=1), role="idle") as bus:
        await asyncio.sleep(3.5)  # brokers drop a client silent for 1.5 keep-alive periods
        assert bus.connected and bus.connections == 1
        await bus.subscribe_raw("still/here", inbox.collect)
        await bus.publish_raw("still/here", "yes")
        await inbox.wait_for(1)


async def test_a_broker_that_stops_answering_is_dropped_and_reconnected(own: Backend) -> None:
    async with Proxy(own.broker_host, own.broker_port) as proxy:
        settings = replace(own.bus("test"), keepalive=1,
                           url=replace(own.bus("test").url, port=proxy.port))
        async with Bus(settings, role="hung") as bus:
            loop = asyncio.get_running_loop()
            proxy.freeze()  # the TCP connection stays up; no PINGRESP comes back
            frozen = loop.time()
            async with asyncio.timeout(10):
                while bus.connected:
                    await asyncio.sleep(0.05)
            assert loop.time() - frozen < 4  # one keep-alive to ping, one to give up
            proxy.frozen = False
            async with asyncio.timeout(10):
                while not bus.connected:
                    await asyncio.sleep(0.05)
            assert bus.connections == 2


async def test_a_busy_bus_stops_reading_instead_of_queueing(own: Backend) -> None:
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


async def test_a_failed_websocket_handshake_leaves_no_socket_open() -> None:
    """paho does not close the socket when the HTTP upgrade fails; the Bus does (with
    ``filterwarnings = error``, the unclosed socket's ResourceWarning would fail this test)."""
    answered = 0

    async def not_a_broker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal answered
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        answered += 1
        await reader.read()  # until the client hangs up
        writer.close()

    server = await asyncio.start_server(not_a_broker, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    settings = BusSettings(BrokerURL("127.0.0.1", port, scheme="ws"), connect_timeout=1.0)
    try:
        with pytest.raises(BusUnavailable, match="cannot connect"):
            async with Bus(settings):
                pass
    finally:
        server.close()
        await server.wait_closed()
    assert answered >= 1
    gc.collect()


async def test_a_burst_larger_than_the_socket_is_written_out_then_the_bus_idles(
    own: Backend,
) -> None:
    """20 MB at once fill the socket: the rest waits for it to drain (a writer on the loop),
    and once everything is out the writer is gone, not spinning on a writable socket."""
    inbox = Inbox()
    big = os.urandom(1_000_000)
    async with Bus(own.bus("test"), role="listener") as listener, \
            Bus(own.bus("test"), role="sender") as sender:
        await listener.subscribe_raw("raw/big", inbox.collect, qos=0)
        await asyncio.gather(*(sender.publish_raw("raw/big", big, qos=0) for _ in range(20)))
        await inbox.wait_for(20, timeout=30)
        assert all(message.payload == big for message in inbox.messages)
        await asyncio.sleep(0.2)
        cpu = time.process_time()
        await asyncio.sleep(1.0)
        assert time.process_time() - cpu < 0.2, "the loop is busy with nothing to do"


async def test_a_bus_cancelled_while_connecting_leaves_nothing_running() -> None:
    """SIGTERM can arrive while a service is still connecting: entering is cancelled, and the
    Bus must stop trying (it is never exited) instead of reconnecting on in the background."""

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # takes the CONNECT, never answers it
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    bus = Bus(BusSettings(BrokerURL("127.0.0.1", port), connect_timeout=5.0), role="test")
    try:
        entering = asyncio.create_task(bus.__aenter__())
        await asyncio.sleep(0.3)
        entering.cancel()
        with pytest.raises(asyncio.CancelledError):
            await entering
        names = {task.get_name() for task in asyncio.all_tasks()}
        assert f"bus:{bus.client_id}" not in names
    finally:
        server.close()
        await server.wait_closed()
