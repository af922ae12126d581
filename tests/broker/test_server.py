"""The embedded broker: authentication on, free ports, a plain message for a taken port."""

from __future__ import annotations

import socket

import pytest

from broker.client import Bus
from broker.errors import BrokerError, BusUnavailable
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings


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
