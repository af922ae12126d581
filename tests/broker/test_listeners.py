"""The embedded broker's TLS and WebSockets listeners, reached by an independent client
(aiomqtt) with credentials, and refused to a client that trusts another CA."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from broker.server import EmbeddedBroker
from schemas.errors import BrokerError, ConfigError
from tests.certs import Pki, make_pki

ACCOUNTS = {"svc": "svc-secret"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture
async def broker(pki: Pki) -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS, tls_cert=pki.server_cert,
                              tls_key=pki.server_key, tls_port=0, ws_port=0,
                              wss_port=0) as running:
        yield running


def trusting(ca: Path, client: Pki | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(ca))
    if client is not None:
        context.load_cert_chain(client.client_cert, client.client_key)
    return context


def listener(broker: EmbeddedBroker, kind: str, ca: Path) -> dict[str, Any]:
    """aiomqtt's arguments for reaching ``broker`` on the listener ``kind``."""
    if kind == "tls":
        return {"port": broker.tls_port, "tls_context": trusting(ca)}
    if kind == "ws":
        return {"port": broker.ws_port, "transport": "websockets", "websocket_path": "/mqtt"}
    return {"port": broker.wss_port, "transport": "websockets", "websocket_path": "/mqtt",
            "tls_context": trusting(ca)}


async def round_trip(**connect: Any) -> bytes:
    async with aiomqtt.Client("127.0.0.1", username="svc", password="svc-secret",
                              timeout=5, **connect) as client:
        await client.subscribe("mirrors/hall/display", qos=1)
        await client.publish("mirrors/hall/display", b"hello", qos=1)
        async for message in client.messages:
            assert isinstance(message.payload, bytes)
            return message.payload
    raise AssertionError("no message")


async def test_every_listener_has_its_own_port(broker: EmbeddedBroker) -> None:
    ports = [broker.port, broker.tls_port, broker.ws_port, broker.wss_port]
    assert all(isinstance(port, int) and port > 0 for port in ports)
    assert len(set(ports)) == 4


@pytest.mark.parametrize("kind", ["tls", "ws", "wss"])
async def test_a_round_trip_on_each_listener(broker: EmbeddedBroker, pki: Pki,
                                             kind: str) -> None:
    assert await round_trip(**listener(broker, kind, pki.ca)) == b"hello"


@pytest.mark.parametrize("kind", ["tls", "wss"])
async def test_a_client_trusting_another_ca_is_refused(broker: EmbeddedBroker, pki: Pki,
                                                      tmp_path: Path, kind: str) -> None:
    # A TLS client of the standard library rather than aiomqtt: paho (under aiomqtt) leaves
    # the socket of a failed handshake open, which filterwarnings=error turns into a failure.
    other = make_pki(tmp_path, name="other")
    port = broker.tls_port if kind == "tls" else broker.wss_port
    with pytest.raises(ssl.SSLCertVerificationError, match=r"self.signed|unable to get local"):
        await asyncio.open_connection("127.0.0.1", port, ssl=trusting(other.ca))
    # The same client trusting the right CA gets through, so it was the CA that failed.
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=trusting(pki.ca))
    writer.close()
    await writer.wait_closed()


@pytest.mark.parametrize("kind", ["tls", "ws", "wss"])
async def test_credentials_are_checked_on_each_listener(broker: EmbeddedBroker, pki: Pki,
                                                        kind: str) -> None:
    with pytest.raises(aiomqtt.MqttCodeError, match=r"[Nn]ot authori[sz]ed|password"):
        async with aiomqtt.Client("127.0.0.1", username="svc", password="wrong", timeout=5,
                                  **listener(broker, kind, pki.ca)):
            pass


async def test_no_client_certificate_is_asked_for_or_checked(broker: EmbeddedBroker,
                                                             tmp_path: Path, pki: Pki) -> None:
    # amqtt's own context (CERT_OPTIONAL against the system CAs) fails this handshake: a
    # certificate of a private CA, offered by a client, is not one the system trusts.
    other = make_pki(tmp_path, name="other")
    context = trusting(pki.ca, client=other)
    assert await round_trip(port=broker.tls_port, tls_context=context) == b"hello"


def test_tls_listeners_need_a_certificate_and_key(pki: Pki) -> None:
    for ports in ({"tls_port": 0}, {"wss_port": 0}):
        with pytest.raises(ConfigError, match=r"tls_cert.*tls_key"):
            EmbeddedBroker(port=0, tls_cert=pki.server_cert, **ports)
    EmbeddedBroker(port=0, ws_port=0)  # plain WebSockets needs none


@pytest.mark.parametrize("problem", ["missing", "not a certificate", "another key"])
async def test_a_bad_certificate_is_one_plain_line(pki: Pki, tmp_path: Path,
                                                   problem: str) -> None:
    cert, key = pki.server_cert, pki.server_key
    if problem == "missing":
        cert = tmp_path / "nowhere.pem"
    elif problem == "not a certificate":
        cert = tmp_path / "junk.pem"
        cert.write_text("not a certificate\n")
    else:
        key = make_pki(tmp_path, name="other").server_key
    with pytest.raises(BrokerError) as caught:
        async with EmbeddedBroker(port=0, tls_cert=cert, tls_key=key, tls_port=0):
            pass
    message = str(caught.value)
    assert "\n" not in message and str(cert) in message
