"""The Bus over TLS (``mqtts://``) to private Mosquittos with certificates made for the test:
the whole path works, and each way TLS can be wrong is refused at once with one clear line."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.client import Bus
from broker.settings import BrokerURL, BusSettings
from schemas.errors import BusUnavailable
from tests.broker.checks import check_mirror, check_register_and_login
from tests.certs import Pki, make_pki
from tests.private_mosquitto import PrivateMosquitto
from tests.support import free_port

MIRRORHUB = str(Path(sys.executable).parent / "mirrorhub")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A CA the broker's certificate has nothing to do with, and a client certificate of it."""
    return make_pki(tmp_path_factory.mktemp("other-pki"), name="other")


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[PrivateMosquitto]:
    with PrivateMosquitto(tmp_path_factory.mktemp("mosquitto-tls"), tls=pki) as running:
        yield running


def over_tls(port: int | None, host: str = "127.0.0.1", **changes: Any) -> BusSettings:
    assert port is not None
    settings = BusSettings(BrokerURL(host, port, scheme="mqtts"), connect_timeout=5.0)
    return replace(settings, **changes)


async def refused(settings: BusSettings, caplog: pytest.LogCaptureFixture) -> str:
    """The one line a Bus that cannot connect says, checked to come at once, untraced."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    with caplog.at_level(logging.DEBUG), pytest.raises(BusUnavailable) as caught:
        async with Bus(settings):
            pass
    assert loop.time() - started < 3, "a TLS refusal is final: no retrying until the timeout"
    line = str(caught.value)
    assert "\n" not in line
    assert not [record for record in caplog.records if record.exc_info], "no traceback logged"
    return line


async def test_http_to_auth_and_a_mirror_over_tls(broker: PrivateMosquitto, pki: Pki,
                                                  tmp_path: Path) -> None:
    settings = over_tls(broker.tls_port, ca_file=pki.ca)
    await check_register_and_login(settings, tmp_path)
    (tmp_path / "frames").mkdir()
    await check_mirror(settings, tmp_path / "frames")


async def test_a_certificate_from_an_untrusted_ca_is_refused(
    broker: PrivateMosquitto, other_ca: Pki, caplog: pytest.LogCaptureFixture,
) -> None:
    line = await refused(over_tls(broker.tls_port, ca_file=other_ca.ca), caplog)
    assert line == ("TLS: the broker's certificate is not signed by the CA in "
                    f"MIRRORHUB_BROKER_CA ({other_ca.ca})")
    # With the system's CAs (no MIRRORHUB_BROKER_CA), the line says what to set.
    line = await refused(over_tls(broker.tls_port), caplog)
    assert line.startswith("TLS: the broker's certificate is not signed by a trusted CA (set "
                           "MIRRORHUB_BROKER_CA")


async def test_a_certificate_for_another_host_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    only_localhost = make_pki(tmp_path / "pki", name="local", hosts=("localhost",))
    with PrivateMosquitto(tmp_path / "mosquitto", tls=only_localhost) as broker:
        line = await refused(over_tls(broker.tls_port, ca_file=only_localhost.ca), caplog)
        assert line == ("TLS: the broker's certificate is for localhost, not 127.0.0.1 (name "
                        "one of those in MIRRORHUB_BROKER_URL)")
        # ...and by that name it connects.
        async with Bus(over_tls(broker.tls_port, "localhost", ca_file=only_localhost.ca)) as bus:
            assert bus.connected


async def test_tls_to_a_plain_port_says_so(broker: PrivateMosquitto, pki: Pki) -> None:
    with pytest.raises(BusUnavailable) as caught:
        async with Bus(over_tls(broker.port, ca_file=pki.ca, connect_timeout=1.0)):
            pass
    assert str(caught.value) == (
        f"cannot connect to the MQTT broker at mqtts://127.0.0.1:{broker.port} within 1 s: "
        f"the TLS handshake was cut off (is 127.0.0.1:{broker.port} a TLS port? a plain one "
        "wants mqtt:// or ws://)")


async def test_a_broker_that_requires_client_certificates(
    tmp_path: Path, pki: Pki, other_ca: Pki, caplog: pytest.LogCaptureFixture,
) -> None:
    with PrivateMosquitto(tmp_path, tls=pki, require_certificate=True) as broker:
        with_cert = over_tls(broker.tls_port, ca_file=pki.ca, cert_file=pki.client_cert,
                             key_file=pki.client_key)
        async with Bus(with_cert) as bus:
            assert bus.connected
        line = await refused(over_tls(broker.tls_port, ca_file=pki.ca), caplog)
        assert line == ("TLS: the broker wants a client certificate (set MIRRORHUB_BROKER_CERT "
                        "and MIRRORHUB_BROKER_KEY)")
        untrusted = over_tls(broker.tls_port, ca_file=pki.ca, cert_file=other_ca.client_cert,
                             key_file=other_ca.client_key)
        line = await refused(untrusted, caplog)
        assert line.startswith("TLS: the broker refused the client certificate in "
                               f"MIRRORHUB_BROKER_CERT ({other_ca.client_cert})")


def cli_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(MIRRORHUB_DATA_DIR=str(tmp_path / "data"), MIRRORHUB_ARGON2_MEMORY_KIB="1024",
               MIRRORHUB_BRIDGE_PORT=str(free_port()), **variables)
    return env


@pytest.mark.parametrize("command", [["mirror", "--id", "hall", "--model-code", "MX-1"], ["up"]])
async def test_the_commands_print_the_tls_line_and_exit(
    broker: PrivateMosquitto, other_ca: Pki, tmp_path: Path, command: list[str],
) -> None:
    env = cli_env(tmp_path, MIRRORHUB_BROKER_URL=f"mqtts://127.0.0.1:{broker.tls_port}",
                  MIRRORHUB_BROKER_CA=str(other_ca.ca))
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, *command, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(process.communicate(), 30)
    stderr = err.decode()
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    assert stderr.splitlines()[-1] == (
        "mirrorhub: TLS: the broker's certificate is not signed by the CA in "
        f"MIRRORHUB_BROKER_CA ({other_ca.ca})")
