"""MQTT 5 (``MIRRORHUB_BROKER_MQTT5=1``) on a private Mosquitto: request/reply as with 3.1.1,
and a QoS 1 request kept for an absent persistent service expires at the broker with its
deadline. amqtt speaks 3.1.1 only: asking it for MQTT 5 is refused with a line that says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.service import Handler, ServiceRunner
from broker.settings import BrokerURL, BusSettings
from schemas.errors import BusUnavailable, RequestTimeout
from schemas.topics import Operation
from tests.private_mosquitto import PrivateMosquitto
from tests.support import unique


class Ping(BaseModel):
    text: str


PING = Operation("svc/five/ping", Ping, reply=Ping)
# Unchecked bodies (request_raw): the service below answers with whatever it was sent.
AWAY = Operation("svc/away/echo", Ping, reply=Ping)


async def pong(request: Ping) -> Ping:
    return Ping(text=request.text.upper())


@pytest.fixture
def mqtt5(tmp_path: Path) -> Iterator[BusSettings]:
    with PrivateMosquitto(tmp_path) as broker:
        yield BusSettings(BrokerURL("127.0.0.1", broker.port), connect_timeout=5.0,
                          request_timeout=3.0, mqtt5=True)


async def test_request_reply_over_mqtt5(mqtt5: BusSettings) -> None:
    async with Bus(mqtt5, role="svc") as service, ServiceRunner(service, "five", [
        Handler(PING, pong),
    ]), Bus(mqtt5, role="caller") as caller:
        assert await caller.request(PING, Ping(text="hi")) == Ping(text="HI")
        replies = await asyncio.gather(*(caller.request(PING, Ping(text=f"x{n}"))
                                         for n in range(50)))
        assert [reply.text for reply in replies] == [f"X{n}" for n in range(50)]


async def test_a_request_for_an_absent_service_expires_at_the_broker(
    mqtt5: BusSettings,
) -> None:
    """The service keeps a persistent session and is away; a QoS 1 request with a 1 s deadline
    is gone when it comes back 2 s later, one with a 15 s deadline is still there."""
    topic = AWAY.template
    arrived: list[str] = []

    async def answer(message: Message) -> None:
        envelope = json.loads(message.payload)
        arrived.append(envelope["body"]["text"])
        # Queued requests arrive right after CONNACK, before the Bus is ready to publish.
        await service.publish_raw(envelope["reply_to"], {"id": envelope["id"], "ok": True,
                                                     "body": envelope["body"]}, qos=0, wait=5)

    service_id = unique("away")
    service = Bus(mqtt5, client_id=service_id, clean_session=False)
    await service.subscribe_raw(topic, answer, qos=1)
    async with service:
        pass  # the session and its subscription stay at the broker
    async with Bus(mqtt5, role="caller") as caller:
        with pytest.raises(RequestTimeout):
            await caller.request_raw(AWAY, {"text": "short"}, timeout=1.0, qos=1)
        patient = asyncio.create_task(
            caller.request_raw(AWAY, {"text": "long"}, timeout=15.0, qos=1))
        await asyncio.sleep(2.0)
        service = Bus(mqtt5, client_id=service_id, clean_session=False)
        await service.subscribe_raw(topic, answer, qos=1)
        async with service:
            assert await asyncio.wait_for(patient, 10) == {"text": "long"}
            await asyncio.sleep(0.3)  # anything else queued would have arrived by now
    assert arrived == ["long"]


async def test_mqtt5_to_amqtt_is_refused_plainly() -> None:
    async with EmbeddedBroker(port=0, accounts={"a": "pw"}) as broker:
        settings = BusSettings(BrokerURL("127.0.0.1", broker.port, "a", "pw"),
                               connect_timeout=3.0, mqtt5=True)
        with pytest.raises(BusUnavailable, match="MQTT 5"):
            async with Bus(settings):
                pass
