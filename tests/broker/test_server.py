"""The embedded broker: authentication on, free ports, a plain message for a taken port."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import aiomqtt
import pytest

from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from schemas.errors import BrokerError, BusUnavailable


def settings(port: int, username: str | None, password: str | None) -> BusSettings:
    return BusSettings(BrokerURL("127.0.0.1", port, username, password), connect_timeout=1.5)


async def test_port_zero_picks_a_free_port_and_credentials_are_checked() -> None:
    async with EmbeddedBroker(port=0, accounts={"svc": "right"}) as broker:
        assert broker.port != 0
        async with Bus(settings(broker.port, "svc", "right")) as bus:
            assert bus.connected
        for username, password in [("svc", "wrong"), ("nobody", "right"), (None, None)]:
            with pytest.raises(BusUnavailable, match="refused the credentials"):
                async with Bus(settings(broker.port, username, password)):
                    pass


async def test_anonymous_clients_only_when_configured() -> None:
    async with (
        EmbeddedBroker(port=0, allow_anonymous=True) as broker,
        Bus(settings(broker.port, None, None)) as bus,
    ):
        assert bus.connected


async def test_taken_port_says_so_and_how_to_move() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(BrokerError) as caught:
            async with EmbeddedBroker(port=port):
                pass
    message = str(caught.value)
    assert "already in use" in message
    assert "MIRRORHUB_BROKER_PORT" in message and "MIRRORHUB_BROKER_URL" in message


async def test_a_client_gets_only_the_retained_messages_it_subscribed_to() -> None:
    accounts = {"a": "pa", "b": "pb"}
    async def ignore(message: Message) -> None:
        return None

    async with (
        EmbeddedBroker(port=0, accounts=accounts) as broker,
        Bus(settings(broker.port, "a", "pa")) as first,
    ):
        await first.subscribe_raw("mirrors/hall/display", ignore)
        await first.publish_raw("mirrors/hall/display", b"ann's messages", retain=True)
        await first.publish_raw("mirrors/bath/display", b"bob's messages", retain=True)
        # A second client hears, on the wire, only what it subscribed to: not hall's display.
        async with aiomqtt.Client("127.0.0.1", broker.port, username="b",
                                  password="pb") as second:
            await second.subscribe("mirrors/bath/#", qos=1)
            heard: list[tuple[str, bytes]] = []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.5):
                    async for message in second.messages:
                        assert isinstance(message.payload, bytes)
                        heard.append((message.topic.value, message.payload))
            assert heard == [("mirrors/bath/display", b"bob's messages")]
