"""The embedded broker finds a message's subscribers by its topic (broker/fanout.py).

amqtt matched every message against every filter in the broker and every new subscription
against every retained message, which made a fleet of 1,000 mirrors cost O(N²) as it came
online; here a message is matched only against the wildcard filters, and every subscriber
still gets exactly what it subscribed to.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable

import aiomqtt
from amqtt.session import Session

from broker.fanout import Subscriptions
from broker.server import EmbeddedBroker

ACCOUNTS = {"svc": "svc-secret"}
MIRRORS = 60


def client(port: int, name: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username="svc", password="svc-secret",
                          identifier=name, timeout=10)


def session(client_id: str) -> Session:
    made = Session()
    made.client_id = client_id
    return made


def test_a_topic_is_matched_against_the_wildcard_filters_only() -> None:
    table = Subscriptions()
    holders = {}
    for n in range(1000):
        holders[n] = [(session(f"m{n}"), 1)]
        table[f"mirrors/m{n}/display"] = holders[n]
    service = session("messaging")
    table["mirrors/+/display"] = [(service, 1)]
    table["events/#"] = [(service, 0)]
    asked: list[tuple[str, str]] = []

    def matches(topic: str, topic_filter: str) -> bool:
        asked.append((topic, topic_filter))
        return topic_filter == "mirrors/+/display"

    found = table.matching("mirrors/m7/display", matches)

    assert found == [holders[7], [(service, 1)]]
    assert found[0] is not holders[7]  # a copy: the walk is safe from (un)subscriptions
    assert sorted(f for _, f in asked) == ["events/#", "mirrors/+/display"]
    assert table.matching("mirrors/nobody/display", lambda *_: False) == []


def test_the_wildcard_index_follows_the_table() -> None:
    table = Subscriptions()
    table["a/+"] = []
    table["a/b"] = []
    table["#"] = []
    del table["a/+"]
    assert list(table.wildcards) == ["#"]
    assert "filters" in repr(table) and "Session" not in repr(table)
    for topic_filter in table:  # a snapshot: deleting while walking is fine
        del table[topic_filter]
    assert not table and not table.wildcards
    table["x/#"] = []
    table.clear()
    assert not table.wildcards


@contextlib.asynccontextmanager
async def mirrors_listening(port: int, stack: contextlib.AsyncExitStack,
                            ) -> AsyncIterator[list[Counter[tuple[str, bytes]]]]:
    """MIRRORS clients, each subscribed to its own display topic, counting what they hear."""
    heard = [Counter[tuple[str, bytes]]() for _ in range(MIRRORS)]

    async def listen(mirror: aiomqtt.Client, into: Counter[tuple[str, bytes]]) -> None:
        async for message in mirror.messages:
            assert isinstance(message.payload, bytes)
            into[(message.topic.value, message.payload)] += 1

    tasks = []
    for n in range(MIRRORS):
        mirror = await stack.enter_async_context(client(port, f"mirror-{n}"))
        await mirror.subscribe(f"mirrors/m{n}/display", qos=1)
        tasks.append(asyncio.create_task(listen(mirror, heard[n])))
    try:
        yield heard
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def until(check: Callable[[], bool], seconds: float = 5.0) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while not check():
                await asyncio.sleep(0.02)


async def test_each_mirror_hears_its_own_display_and_a_wildcard_hears_all() -> None:
    async with (
        EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker,
        contextlib.AsyncExitStack() as stack,
    ):
        service = await stack.enter_async_context(client(broker.port, "service"))
        await service.subscribe("mirrors/+/display", qos=1)
        everything: Counter[str] = Counter()

        async def count() -> None:
            async for message in service.messages:
                everything[message.topic.value] += 1

        counting = asyncio.create_task(count())
        async with (mirrors_listening(broker.port, stack) as heard,
                    client(broker.port, "publisher") as publisher):
            for n in range(MIRRORS):
                await publisher.publish(f"mirrors/m{n}/display", f"for {n}".encode(), qos=1)
            await until(lambda: sum(everything.values()) >= MIRRORS and all(heard))
            await asyncio.sleep(0.2)  # a stray or duplicate delivery would be here by now
        counting.cancel()
    for n, counts in enumerate(heard):
        assert counts == Counter({(f"mirrors/m{n}/display", f"for {n}".encode()): 1})
    assert everything == Counter({f"mirrors/m{n}/display": 1 for n in range(MIRRORS)})


async def test_a_subscription_gets_its_retained_message_among_many() -> None:
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker:
        async with client(broker.port, "publisher") as publisher:
            for n in range(MIRRORS):
                await publisher.publish(f"mirrors/m{n}/display", f"for {n}".encode(), qos=1,
                                        retain=True)
        for topic_filter, expected in [
            ("mirrors/m7/display", {"mirrors/m7/display"}),
            ("mirrors/+/display", {f"mirrors/m{n}/display" for n in range(MIRRORS)}),
            ("mirrors/m8/#", {"mirrors/m8/display"}),
            ("mirrors/nobody/display", set()),
        ]:
            async with client(broker.port, "reader") as reader:
                await reader.subscribe(topic_filter, qos=1)
                got: list[str] = []
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        async for message in reader.messages:
                            got.append(message.topic.value)
                            assert message.retain
            assert sorted(got) == sorted(expected), topic_filter


async def test_a_filter_leaves_the_table_with_its_last_subscriber() -> None:
    async with (EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker,
                client(broker.port, "steady") as steady):
        await steady.subscribe("mirrors/+/status", qos=1)
        baseline = broker.topic_filters
        async with client(broker.port, "churner") as churner:
            for n in range(50):
                await churner.subscribe(f"churn/{n}/+", qos=1)
                await churner.subscribe(f"churn/{n}", qos=1)
                await churner.unsubscribe(f"churn/{n}/+")
            assert broker.topic_filters == baseline + 50
        await until(lambda: broker.topic_filters == baseline)
        assert broker.topic_filters == baseline == 1


async def test_overlapping_filters_get_one_copy_at_their_highest_qos() -> None:
    """MQTT-3.3.5-1, as Mosquitto does it: amqtt sent a copy for each matching filter."""
    async with (
        EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker,
        client(broker.port, "watcher") as watcher,
        client(broker.port, "publisher") as publisher,
    ):
        await watcher.subscribe("mirrors/#", qos=0)
        await watcher.subscribe("mirrors/+/status", qos=1)
        await watcher.subscribe("mirrors/hall/status", qos=0)
        heard: list[tuple[str, int]] = []

        async def listen() -> None:
            async for message in watcher.messages:
                heard.append((message.topic.value, message.qos))

        listening = asyncio.create_task(listen())
        await publisher.publish("mirrors/hall/status", b"online", qos=1)
        await publisher.publish("mirrors/hall/display", b"{}", qos=1)
        await until(lambda: len(heard) >= 2)
        await asyncio.sleep(0.3)  # a second copy would be here by now
        listening.cancel()
    assert sorted(heard) == [("mirrors/hall/display", 0), ("mirrors/hall/status", 1)]
