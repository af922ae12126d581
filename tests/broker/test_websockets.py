"""The Bus over WebSockets (``ws://``, ``wss://``) and over TLS (``mqtts://``) to the embedded
broker's extra listeners (Debian's Mosquitto has no WebSockets): HTTP to auth and back, and a
simulated mirror's whole life, on each; a broker of a CA the Bus does not trust is refused.
(amqtt answers WebSockets on any path; a failed upgrade is in test_connection.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from broker.client import Bus
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from schemas.errors import BusUnavailable
from tests.broker.checks import check_mirror, check_register_and_login
from tests.certs import Pki, make_pki

USER, PASSWORD = "svc", "svc-secret"
# The embedded broker keeps client ids to their roles: auth and the bridge log in as themselves.
ROLES = {"auth": "auth-secret", "bridge": "bridge-secret"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
async def broker(pki: Pki) -> AsyncIterator[EmbeddedBroker]:
    async with EmbeddedBroker(port=0, accounts={USER: PASSWORD, **ROLES}, tls_cert=pki.server_cert,
                              tls_key=pki.server_key, tls_port=0, ws_port=0,
                              wss_port=0) as running:
        yield running


def reach(broker: EmbeddedBroker, scheme: str, pki: Pki, **changes: Any) -> BusSettings:
    port = {"mqtts": broker.tls_port, "ws": broker.ws_port, "wss": broker.wss_port}[scheme]
    assert port is not None
    url = BrokerURL.parse(f"{scheme}://{USER}:{PASSWORD}@127.0.0.1:{port}")
    settings = BusSettings(url, connect_timeout=5.0, ca_file=pki.ca if url.tls else None)
    return replace(settings, **changes)


@pytest.mark.parametrize("scheme", ["ws", "wss", "mqtts"])
async def test_http_to_auth_and_a_mirror(broker: EmbeddedBroker, pki: Pki, tmp_path: Path,
                                         scheme: str) -> None:
    settings = reach(broker, scheme, pki)
    await check_register_and_login(settings, tmp_path, ROLES)
    (tmp_path / "frames").mkdir()
    await check_mirror(settings, tmp_path / "frames")


async def test_wss_to_a_broker_of_an_untrusted_ca_is_refused(broker: EmbeddedBroker,
                                                             tmp_path: Path, pki: Pki) -> None:
    other = make_pki(tmp_path, name="other")
    with pytest.raises(BusUnavailable) as caught:
        async with Bus(reach(broker, "wss", pki, ca_file=other.ca)):
            pass
    assert str(caught.value) == ("TLS: the broker's certificate is not signed by the CA in "
                                 f"MIRRORHUB_BROKER_CA ({other.ca})")
