"""``events/{service}/status`` is retained: a watcher that subscribes late (the admin page)
hears each service's latest word, and an instance still running says ``online`` again when
another instance of its service goes offline. On the embedded broker and on Mosquitto."""

from __future__ import annotations

import asyncio
import uuid

from broker.client import Bus, Message
from broker.service import service_bus
from schemas.service import SERVICE_STATUS, ServiceStatus
from tests.conftest import Backend, isolated


async def retained_status(backend: Backend, service: str) -> ServiceStatus:
    """The retained status a watcher connecting now hears first."""
    got: asyncio.Queue[Message] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await got.put(message)

    async with Bus(backend.bus("bridge"), role="bridge") as watcher:
        await watcher.subscribe(SERVICE_STATUS, collect, service=service)
        message = await asyncio.wait_for(got.get(), 5)
    assert message.retain
    return ServiceStatus.model_validate_json(message.payload)


async def until_retained(backend: Backend, service: str, client_id: str, state: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while True:
        status = await retained_status(backend, service)
        if (status.client_id, status.state) == (client_id, state):
            return
        assert loop.time() < deadline, f"retained {status}, not {client_id} {state}"
        await asyncio.sleep(0.05)


async def test_status_is_retained_and_kept_online_by_the_instance_left(backend: Backend) -> None:
    own = isolated(backend)
    service = f"st{uuid.uuid4().hex[:8]}"
    async with service_bus(own.bus("test"), service) as first:
        await until_retained(own, service, first.client_id, "online")
        async with service_bus(own.bus("test"), service) as second:
            await until_retained(own, service, second.client_id, "online")
        # The second's clean close said offline; the first, still running, answered online.
        await until_retained(own, service, first.client_id, "online")
    await until_retained(own, service, first.client_id, "offline")
    async with Bus(own.bus("bridge"), role="bridge") as cleaner:  # leave no retained message
        await cleaner.publish(SERVICE_STATUS, b"", retain=True, service=service)
