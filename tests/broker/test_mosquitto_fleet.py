"""deploy/mosquitto-fleet.conf on a private Mosquitto: it starts with TLS, mirrors reach it
over TLS only with the right CA, a mirror's forbidden Last Wills are never delivered, and no
client takes over a live service session by naming its client id."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import aiomqtt
import pytest

from tests.broker.test_connect_rules import FORBIDDEN_WILLS, vanish_with_will, watching
from tests.certs import Pki, make_pki
from tests.private_mosquitto import PrivateMosquitto

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"messaging": "messaging-secret", "operator": "operator-secret"}
MIRRORS = {"mirA": "mirA-secret", "mirB": "mirB-secret"}


@dataclass(frozen=True)
class Fleet:
    broker: PrivateMosquitto
    pki: Pki

    @property
    def mirror_port(self) -> int:
        assert self.broker.tls_port is not None
        return self.broker.tls_port

    def tls(self, ca: Path | None = None) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(ca or self.pki.ca))


def password_file(path: Path, accounts: dict[str, str]) -> Path:
    path.write_text("")
    for user, password in accounts.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, password], check=True,
                       capture_output=True)
    return path


def fleet_config(directory: Path, pki: Pki) -> str:
    """deploy/mosquitto-fleet.conf with this test's files and ports (and its log on stderr)."""
    text = (ROOT / "deploy/mosquitto-fleet.conf").read_text()
    (directory / "data").mkdir()
    acl = directory / "mirrors.acl"
    acl.write_text((ROOT / "deploy/mosquitto-mirrors.acl").read_text())
    for old, new in {
        "listener 1883": "listener {port} 127.0.0.1",
        "listener 8883": "listener {tls_port} 127.0.0.1",
        "/mosquitto/data/": f"{directory / 'data'}/",
        "/mosquitto/config/certs/server.pem": str(pki.server_cert),
        "/mosquitto/config/certs/server.key": str(pki.server_key),
        "/mosquitto/config/certs/ca.pem": str(pki.ca),
        "/mosquitto/config/services.passwd": str(password_file(directory / "services.passwd",
                                                                SERVICES)),
        "/mosquitto/config/mirrors.passwd": str(password_file(directory / "mirrors.passwd",
                                                               MIRRORS)),
        "/mosquitto/config/mirrors.acl": str(acl),
        "log_dest stdout": "log_dest stderr\nlog_type all",
    }.items():
        assert old in text, f"deploy/mosquitto-fleet.conf no longer says {old!r}"
        text = text.replace(old, new)
    return text


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    pki = make_pki(tmp_path / "pki")
    with PrivateMosquitto(tmp_path, config=fleet_config(tmp_path, pki)) as broker:
        yield Fleet(broker, pki)


def service(fleet: Fleet, user: str, client_id: str, **options: object) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", fleet.broker.port, username=user,
                          password=SERVICES[user], identifier=client_id, timeout=5,
                          **options)  # type: ignore[arg-type]


def mirror(fleet: Fleet, user: str, client_id: str, **options: object) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", fleet.mirror_port, username=user,
                          password=MIRRORS[user], identifier=client_id, timeout=5,
                          tls_context=fleet.tls(), **options)  # type: ignore[arg-type]


async def test_a_mirror_talks_to_a_service_over_tls(fleet: Fleet) -> None:
    async with service(fleet, "messaging", "messaging-main") as svc, \
            mirror(fleet, "mirA", "mirA") as mir:
        await svc.subscribe("mirrors/+/frame", qos=1)
        await mir.subscribe("mirrors/mirA/display", qos=1)
        await mir.publish("mirrors/mirA/frame", b"jpeg", qos=1)
        async with asyncio.timeout(5):
            async for message in svc.messages:
                assert (message.topic.value, message.payload) == ("mirrors/mirA/frame", b"jpeg")
                break
        await svc.publish("mirrors/mirA/display", b"ann", qos=1)
        async with asyncio.timeout(5):
            async for message in mir.messages:
                assert message.payload == b"ann"
                break


async def test_the_mirrors_listener_wants_the_right_ca(fleet: Fleet, tmp_path: Path) -> None:
    other = make_pki(tmp_path / "other", name="other")
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection("127.0.0.1", fleet.mirror_port,
                                      ssl=fleet.tls(other.ca))


async def test_accounts_live_on_their_own_listener(fleet: Fleet) -> None:
    with pytest.raises(aiomqtt.MqttCodeError):  # a mirror's account is not a service's
        async with aiomqtt.Client("127.0.0.1", fleet.broker.port, username="mirA",
                                  password=MIRRORS["mirA"], timeout=5):
            pass


@pytest.mark.parametrize(("topic", "payload"), FORBIDDEN_WILLS)
async def test_a_mirrors_forbidden_will_is_never_delivered(fleet: Fleet, topic: str,
                                                           payload: str) -> None:
    async with watching(fleet.broker.port, "operator", SERVICES["operator"]) as heard:
        said = await vanish_with_will(fleet.mirror_port, "mirA", MIRRORS["mirA"], "mirA",
                                      topic, payload, fleet.pki.ca)
        assert said == "connected" or said.startswith("refused")
        await asyncio.sleep(0.5)
    assert [entry for entry in heard if entry[0] == topic] == []


async def test_a_mirrors_status_will_is_delivered(fleet: Fleet) -> None:
    async with watching(fleet.broker.port, "operator", SERVICES["operator"]) as heard:
        said = await vanish_with_will(fleet.mirror_port, "mirA", MIRRORS["mirA"], "mirA",
                                      "mirrors/mirA/status", "offline", fleet.pki.ca)
        assert said == "connected"
        async with asyncio.timeout(10):
            while ("mirrors/mirA/status", b"offline") not in heard:
                await asyncio.sleep(0.05)


@pytest.mark.parametrize("attacker", ["nobody", "wrong password", "mirror", "mirror inside"])
async def test_nobody_takes_over_a_live_service_session(fleet: Fleet, attacker: str) -> None:
    async with service(fleet, "messaging", "messaging-main", clean_session=False) as svc, \
            service(fleet, "operator", "sender") as sender:
        await svc.subscribe("svc/messaging/send", qos=1)
        port, user, password, tls = {
            "nobody": (fleet.broker.port, None, None, None),
            "wrong password": (fleet.broker.port, "messaging", "wrong", None),
            "mirror": (fleet.mirror_port, "mirA", MIRRORS["mirA"], fleet.tls()),
            "mirror inside": (fleet.broker.port, "mirA", MIRRORS["mirA"], None),
        }[attacker]
        try:
            async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                                      identifier="messaging-main", clean_session=False,
                                      tls_context=tls, timeout=5):
                # Admitted only as itself: the broker named this client after its username.
                assert attacker == "mirror"
                await asyncio.sleep(0.5)  # time to kick the service, were it to
        except aiomqtt.MqttCodeError:
            assert attacker != "mirror"
        await sender.publish("svc/messaging/send", b"still there?", qos=1)
        async with asyncio.timeout(5):
            async for message in svc.messages:
                assert message.payload == b"still there?"
                break
    log = fleet.broker.log.read_text()
    assert "already connected, closing old connection" not in log, log[-2000:]
