"""Under a flood of camera frames the embedded broker stays bounded and keeps answering requests.

amqtt 0.12.1 queued every publish it could not yet fan out, frames included, so a broker behind
its clients grew without end (hundreds of MB in seconds) and requests waited behind the frames.
broker/shedding.py sheds QoS 0 frames, the newest per mirror kept; QoS 1 is never shed.
"""

from __future__ import annotations

import asyncio
import sys

import aiomqtt
from prometheus_client import REGISTRY

from broker.server import EmbeddedBroker
from broker.shedding import SESSION_FRAMES
from tests.support import die_with_parent

ACCOUNTS = {"svc": "svc-secret"}
MIRRORS = 10
SECONDS = 3.0
REQUESTS = 30


def client(port: int, name: str) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", port, username="svc", password="svc-secret",
                          identifier=name, timeout=10)


async def answer(port: int, ready: asyncio.Event) -> None:
    """A service: every request on svc/echo is answered on its reply topic, QoS 1."""
    async with client(port, "echo-service") as service:
        await service.subscribe("svc/echo", qos=1)
        ready.set()
        async for message in service.messages:
            assert isinstance(message.payload, bytes)
            await service.publish("reply/requester", message.payload, qos=1)


async def test_frames_are_shed_and_requests_answered_under_a_flood() -> None:
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker:
        amqtt_broker = broker._broker
        assert amqtt_broker is not None
        ready = asyncio.Event()
        service = asyncio.create_task(answer(broker.port, ready))
        await ready.wait()
        flood = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tests.broker.frame_flood", str(broker.port), str(MIRRORS),
            str(SECONDS), stdout=asyncio.subprocess.PIPE, preexec_fn=die_with_parent)
        backlog = 0
        answered: set[bytes] = set()
        try:
            async with client(broker.port, "requester") as requester:
                await requester.subscribe("reply/requester", qos=1)

                async def replies() -> None:
                    async for message in requester.messages:
                        assert isinstance(message.payload, bytes)
                        answered.add(message.payload)

                reading = asyncio.create_task(replies())
                for number in range(REQUESTS):
                    await requester.publish("svc/echo", str(number).encode(), qos=1)
                    backlog = max(backlog, amqtt_broker._broadcast_queue.qsize())
                    await asyncio.sleep(SECONDS / REQUESTS)
                async with asyncio.timeout(20):
                    while len(answered) < REQUESTS:
                        await asyncio.sleep(0.05)
                reading.cancel()
            out, _ = await asyncio.wait_for(flood.communicate(), 30)
        finally:
            if flood.returncode is None:
                flood.kill()
                await flood.wait()
            service.cancel()
            await asyncio.gather(service, return_exceptions=True)
        shed = amqtt_broker.shed
    sent, read = (int(word) for word in out.split()[1::2])
    assert answered == {str(number).encode() for number in range(REQUESTS)}
    # At most one frame per mirror waits to be fanned out, besides the requests and replies.
    assert backlog <= MIRRORS + 4, backlog
    assert sent > 20 * read, (sent, read)  # the reader really was far behind
    assert shed.counts["replaced by a newer frame"] > 0, shed.counts
    assert shed.counts["subscriber behind"] > 0, shed.counts
    # /metrics says so too (counted since the process started: at least this broker's).
    for reason, count in shed.counts.items():
        assert REGISTRY.get_sample_value("mirrorhub_broker_frames_shed_total",
                                         {"reason": reason}) >= count
    assert SESSION_FRAMES < read < sent
