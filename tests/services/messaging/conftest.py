"""Fixtures for the messaging tests: a client on the test broker, users registered through auth."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from broker.client import Bus, Message
from schemas.auth import AUTH_REGISTER, RegisterRequest
from schemas.messaging import MIRROR_DISPLAY, Display
from services.auth.accounts import Accounts
from services.messaging.service import Messaging
from tests.conftest import Backend
from tests.support import unique


@pytest.fixture
async def bus(
    backend: Backend, auth_service: Accounts, messaging_service: Messaging
) -> AsyncIterator[Bus]:
    async with Bus(backend.bus("test"), role="test") as client:
        yield client


async def register(bus: Bus, prefix: str = "user") -> str:
    name = unique(prefix)
    await bus.request(AUTH_REGISTER, RegisterRequest(username=name, password="pw",
                                                     email=f"{name}@example.com"))
    return name


class Screen:
    """Every display one mirror is told, in order, for a test to wait on."""

    def __init__(self, mirror_id: str) -> None:
        self.mirror_id = mirror_id
        self.displays: list[Display] = []
        self._changed = asyncio.Event()

    async def on_display(self, message: Message) -> None:
        self.displays.append(Display.model_validate_json(message.payload))
        self._changed.set()

    async def next(self, predicate: Callable[[Display], bool], timeout: float = 5.0) -> Display:
        """The first display from now on, or already received, that ``predicate`` accepts."""
        async with asyncio.timeout(timeout):
            while True:
                for display in self.displays:
                    if predicate(display):
                        return display
                self._changed.clear()
                await self._changed.wait()

    def forget(self) -> None:
        self.displays.clear()


async def watch(bus: Bus, mirror_id: str) -> Screen:
    screen = Screen(mirror_id)
    await bus.subscribe(MIRROR_DISPLAY, screen.on_display, mirror_id=mirror_id)
    return screen
