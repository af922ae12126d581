"""Which subscriptions a message reaches, remembered per topic (broker/subscriptions.py): what
is remembered never hides a subscription made later, never leaks one handler's parameters into
the next message, and stays right once the memory is full and starts again."""

from __future__ import annotations

import asyncio

import pytest

from broker import subscriptions
from broker.client import Bus, Message
from schemas.topics import Topic
from tests.conftest import Backend
from tests.support import overhear, unique


async def next_payload(heard: asyncio.Queue[Message]) -> bytes:
    return (await asyncio.wait_for(heard.get(), 5)).payload


async def test_a_subscription_made_later_hears_a_topic_already_routed(backend: Backend) -> None:
    root = unique("routes")
    async with Bus(backend.bus("test")) as bus:
        first = await overhear(bus, f"{root}/+/state")
        await bus.publish_raw(f"{root}/hall/state", b"1", qos=1)
        assert await next_payload(first) == b"1"  # the topic's route is remembered now
        later = await overhear(bus, f"{root}/#")
        await bus.publish_raw(f"{root}/hall/state", b"2", qos=1)
        assert (await next_payload(first), await next_payload(later)) == (b"2", b"2")
        await asyncio.sleep(0.2)  # one copy each: the broker sends the client one
        assert first.empty() and later.empty()


async def test_each_message_gets_parameters_of_its_own(backend: Backend) -> None:
    root = unique("params")
    topic: Topic[None] = Topic(f"{root}/{{mirror_id}}/state", None)
    seen: list[dict[str, str]] = []

    async def meddle(message: Message) -> None:
        seen.append(dict(message.params))
        message.params["mirror_id"] = "changed by a handler"

    async with Bus(backend.bus("test")) as bus:
        await bus.subscribe(topic, meddle, qos=1)
        await asyncio.sleep(0.2)
        for _ in range(3):
            await bus.publish(topic, b"x", qos=1, mirror_id="hall")
        async with asyncio.timeout(5):
            while len(seen) < 3:
                await asyncio.sleep(0.02)
    assert seen == [{"mirror_id": "hall"}] * 3


async def test_routes_stay_right_past_the_number_remembered(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(subscriptions, "ROUTES_KEPT", 2)
    root = unique("many")
    async with Bus(backend.bus("test")) as bus:
        even = await overhear(bus, f"{root}/even/+")
        odd = await overhear(bus, f"{root}/odd/+")
        for round_ in range(2):  # the second time over topics forgotten and learnt again
            for n in range(6):
                kind = "odd" if n % 2 else "even"
                await bus.publish_raw(f"{root}/{kind}/{n}", f"{round_}.{n}".encode(), qos=1)
        heard_even = [await next_payload(even) for _ in range(6)]
        heard_odd = [await next_payload(odd) for _ in range(6)]
        await asyncio.sleep(0.2)
        assert even.empty() and odd.empty()
    assert heard_even == [f"{r}.{n}".encode() for r in range(2) for n in (0, 2, 4)]
    assert heard_odd == [f"{r}.{n}".encode() for r in range(2) for n in (1, 3, 5)]
