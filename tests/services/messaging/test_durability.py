"""Nothing lost: messages outlive restarts of the service and of the broker; a send while the
service is away is delivered once it is back within the deadline, or not at all, never twice."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from broker.client import Bus
from broker.server import EmbeddedBroker
from schemas.errors import RequestTimeout
from schemas.messaging import MESSAGING_LIST, MESSAGING_SEND, MessagesRequest, SendRequest
from services.auth.service import run_auth
from services.messaging.config import MessagingSettings
from services.messaging.service import Messaging, run_messaging
from tests.conftest import (
    ACCOUNTS,
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
)
from tests.services.messaging.conftest import register
from tests.support import free_port, unique


def note(sender: str, receiver: str, text: str, key: str | None = None) -> SendRequest:
    return SendRequest(sender_username=sender, receiver_username=receiver, content=text,
                       message_id=key)


async def contents(bus: Bus, receiver: str) -> list[str]:
    page = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=receiver))
    return [m.content for m in page.messages]


@dataclass(frozen=True)
class Alone:
    """Auth running in a namespace of its own; messaging comes and goes with :meth:`up`."""

    backend: Backend
    settings: MessagingSettings
    bus: Bus

    def up(self) -> contextlib.AbstractAsyncContextManager[Messaging]:
        return run_messaging(self.backend.bus("messaging"), self.settings)


@contextlib.asynccontextmanager
async def alone(backend: Backend, tmp_path: Path) -> AsyncIterator[Alone]:
    own = isolated(backend)
    auth_db, db = await create_database(own, "auth"), await create_database(own, "messaging")
    try:
        async with (
            run_auth(own.bus("auth"), auth_settings(tmp_path, auth_db, None)),
            Bus(own.bus("test"), role="test") as bus,
        ):
            yield Alone(own, messaging_settings(tmp_path, db), bus)
    finally:
        await drop_database(auth_db)
        await drop_database(db)


async def test_a_send_waits_for_the_service_to_come_back(
    backend: Backend, tmp_path: Path
) -> None:
    async with alone(backend, tmp_path) as system:
        bus = system.bus
        async with system.up():
            ann, bob = await register(bus, "ann"), await register(bus, "bob")
            await bus.request(MESSAGING_SEND, note(ann, bob, "before"), qos=1)
        # The service is gone; its persistent session keeps QoS 1 sends at the broker.
        key = unique("key")
        sending = asyncio.create_task(
            bus.request(MESSAGING_SEND, note(ann, bob, "while away", key), qos=1, timeout=8.0))
        await asyncio.sleep(1.0)
        assert not sending.done()
        async with system.up():
            reply = await sending
            assert reply.message_id == key and not reply.duplicate
            assert await contents(bus, bob) == ["while away", "before"]
            # A client retrying after a lost reply stores nothing new.
            again = await bus.request(MESSAGING_SEND, note(ann, bob, "while away", key), qos=1)
            assert again.duplicate
            assert await contents(bus, bob) == ["while away", "before"]


async def test_a_send_that_timed_out_is_never_stored_later(
    backend: Backend, tmp_path: Path
) -> None:
    async with alone(backend, tmp_path) as system:
        bus = system.bus
        async with system.up():
            ann, bob = await register(bus, "ann"), await register(bus, "bob")
        with pytest.raises(RequestTimeout):  # what the bridge answers 503 for
            await bus.request(MESSAGING_SEND, note(ann, bob, "too late"), qos=1, timeout=1.0)
        async with system.up():
            await bus.request(MESSAGING_SEND, note(ann, bob, "after"), qos=1)
            await asyncio.sleep(0.3)  # the queued, expired send has surely arrived by now
            assert await contents(bus, bob) == ["after"]


async def test_messages_survive_a_broker_restart(backend: Backend, tmp_path: Path) -> None:
    if backend.name != "embedded+sqlite":
        # A broker of its own to restart, with SQLite: run it beside the SQLite services only,
        # since tortoise keeps one database dialect per model class in a process.
        pytest.skip("restarts an embedded broker of its own; runs with the embedded backend")
    port = free_port()
    own = Backend("embedded+sqlite", "127.0.0.1", port, None, f"sqlite://{tmp_path}")
    settings = messaging_settings(tmp_path, own.database_url("messaging"))
    async with (
        EmbeddedBroker(port=port, accounts=ACCOUNTS) as broker,
        run_auth(own.bus("auth"), auth_settings(tmp_path, own.database_url("auth"), None)),
        run_messaging(own.bus("messaging"), settings),
        Bus(own.bus("test"), role="test") as bus,
    ):
        ann, bob = await register(bus, "ann"), await register(bus, "bob")
        await bus.request(MESSAGING_SEND, note(ann, bob, "one"), qos=1)
        await broker.__aexit__(None, None, None)
        await asyncio.sleep(0.3)
        async with EmbeddedBroker(port=port, accounts=ACCOUNTS):
            reply = None
            for _ in range(100):  # every client reconnects on its own
                try:
                    reply = await bus.request(MESSAGING_SEND, note(ann, bob, "two"), qos=1,
                                              timeout=1.0)
                    break
                except Exception:
                    await asyncio.sleep(0.1)
            assert reply is not None, "the services did not come back after the broker"
            assert await contents(bus, bob) == ["two", "one"]
            await bus.__aexit__(None, None, None)
