"""A database server that goes away while a service runs (kill -9 of a private PostgreSQL):
the requests meanwhile are answered ``unavailable`` (the bridge's 503, "try again") at once,
not ``internal`` (500) with a traceback; once the server is back the same process answers
again without a restart, and a send retried with its ``message_id`` is stored once. Other
failures stay ``internal``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]  # asyncpg ships no type hints
import pytest

from broker.client import Bus
from broker.server import EmbeddedBroker
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from schemas.messaging import MESSAGING_LIST, MESSAGING_SEND, MessagesRequest, SendRequest
from services.auth.service import run_auth
from services.database import server_away
from services.messaging.service import run_messaging
from tests.conftest import ACCOUNTS, Backend, auth_settings, messaging_settings
from tests.private_postgres import PrivatePostgres
from tests.services.messaging.conftest import register
from tests.support import free_port


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    with PrivatePostgres() as server:
        yield server


async def send(bus: Bus, sender: str, receiver: str, key: str) -> str:
    request = SendRequest(sender_username=sender, receiver_username=receiver,
                          content=f"note {key}", message_id=key)
    return (await bus.request(MESSAGING_SEND, request, timeout=5.0)).message_id


async def test_a_killed_database_server_is_unavailable_then_back(
    postgres: PrivatePostgres, tmp_path: Path
) -> None:
    url = postgres.create_database("messaging_outage")
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker:
        backend = Backend("embedded", broker.host, broker.port, None, f"sqlite://{tmp_path}")
        async with (
            run_auth(backend.bus("auth"),
                     auth_settings(tmp_path, backend.database_url("auth"), None)),
            run_messaging(backend.bus("messaging"), messaging_settings(tmp_path, url)),
            Bus(backend.bus("test"), role="test") as bus,
        ):
            ann, bob = await register(bus, "ann"), await register(bus, "bob")
            await send(bus, ann, bob, "before")
            postgres.kill()
            with pytest.raises(ServiceError) as caught:
                await send(bus, ann, bob, "during")
            assert caught.value.code == ErrorCode.UNAVAILABLE, caught.value
            assert caught.value.message.startswith("messaging: its database server")
            assert caught.value.message.endswith("; try again")
            postgres.start()
            async with asyncio.timeout(20):  # the pool's first connections may be the dead ones
                while True:
                    try:
                        assert await send(bus, ann, bob, "during") == "during"
                        break
                    except ServiceError as exc:
                        assert exc.code == ErrorCode.UNAVAILABLE, exc
                        await asyncio.sleep(0.2)
            await send(bus, ann, bob, "during")  # once more: stored nothing new
            page = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=bob))
            assert [m.content for m in page.messages] == ["note during", "note before"]


async def test_only_the_database_drivers_failures_count_as_the_server_away() -> None:
    with pytest.raises(OSError) as refused:  # asyncpg's own connecting, to a closed port
        await asyncpg.connect(f"postgres://postgres@127.0.0.1:{free_port()}/x", timeout=5)
    assert server_away(refused.value) is not None
    with pytest.raises(OSError) as elsewhere:  # somebody else's server (a mail server, say)
        await asyncio.open_connection("127.0.0.1", free_port())
    assert isinstance(elsewhere.value, ConnectionError)
    assert server_away(elsewhere.value) is None
    assert server_away(ValueError("a bug")) is None
