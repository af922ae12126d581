"""The embedded broker delivers every message while other clients subscribe and unsubscribe.

amqtt 0.12.1 walks its subscription table while it awaits the topic plugins; a subscription
made meanwhile broke that walk ("dictionary changed size during iteration"), and the message
reached only the subscribers visited before it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections import Counter

import aiomqtt

from broker.server import EmbeddedBroker

ACCOUNTS = {"svc": "svc-secret"}
MESSAGES = 200
# One filter each: the broker walks its table filter by filter, and a walk broken after the
# first filter missed the subscribers of the others.
STEADY = ("load/#", "load/+", "+/+")
CHURNERS = 4


def client(port: int, name: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username="svc", password="svc-secret",
                          identifier=name, timeout=10)


async def count_into(subscriber: aiomqtt.Client, counts: Counter[bytes]) -> None:
    async for message in subscriber.messages:
        assert isinstance(message.payload, bytes)
        counts[message.payload] += 1


async def churn(port: int, name: str, stop: asyncio.Event) -> int:
    """Subscribe to ever new filters and drop them again until told to stop."""
    rounds = 0
    async with client(port, name) as churner:
        for n in itertools.count():
            if stop.is_set():
                break
            await churner.subscribe(f"churn/{name}/{n}", qos=1)
            await churner.unsubscribe(f"churn/{name}/{n - 1}")
            rounds += 1
    return rounds


async def test_every_subscriber_gets_every_message_while_others_churn() -> None:
    async with (
        EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker,
        contextlib.AsyncExitStack() as stack,
    ):
        counts = [Counter[bytes]() for _ in STEADY]
        readers = []
        for index, topic_filter in enumerate(STEADY):
            steady = await stack.enter_async_context(client(broker.port, f"steady-{index}"))
            await steady.subscribe(topic_filter, qos=1)
            readers.append(asyncio.create_task(count_into(steady, counts[index])))
        stop = asyncio.Event()
        churners = [asyncio.create_task(churn(broker.port, f"churner-{n}", stop))
                    for n in range(CHURNERS)]
        async with client(broker.port, "publisher") as publisher:
            for number in range(MESSAGES):
                await publisher.publish(f"load/{number % 7}", str(number).encode(), qos=1)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    while any(sum(c.values()) < MESSAGES for c in counts):
                        await asyncio.sleep(0.05)
        stop.set()
        rounds = await asyncio.gather(*churners)
        await asyncio.sleep(0.2)  # a duplicate, if any, would arrive by now
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
    assert min(rounds) > 10, rounds  # the churn really overlapped the publishing
    expected = Counter(str(number).encode() for number in range(MESSAGES))
    for topic_filter, seen in zip(STEADY, counts, strict=True):
        missing = len(expected - seen)
        assert seen == expected, f"{topic_filter}: {missing} of {MESSAGES} missing"
