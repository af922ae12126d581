"""Who may call the file store: the role accounts only. A mirror's account (its own, or the
shared device one) cannot reach svc/messaging/files/*, on the embedded broker (broker/access.py)
nor on Mosquitto's mirrors' listener (deploy/mosquitto-mirrors.acl); so the service may take
the ``owner`` it is sent as the bridge's word."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from schemas.errors import ServiceError
from schemas.files import FILES_BEGIN, FILES_STAT, BeginUpload, FileKey
from schemas.messaging import MessagingError
from services.messaging.service import run_messaging
from tests.broker.test_mosquitto_fleet import Fleet, fleet, mirror, service
from tests.conftest import ACCOUNTS, Backend, create_database, drop_database, messaging_settings

__all__ = ["fleet"]  # the fixture, used below by name

MIRRORS = {"hall": "hall-secret"}
ROLES = {**ACCOUNTS, "device": "device-secret"}


def envelope(body: dict[str, str], reply_to: str) -> bytes:
    return json.dumps({"id": "1", "reply_to": reply_to, "body": body}).encode()


async def test_mirror_accounts_cannot_reach_the_file_store(
    backend: Backend, tmp_path: Path
) -> None:
    devices = tmp_path / "device_accounts.json"
    devices.write_text(json.dumps(MIRRORS))
    url = await create_database(backend, "messaging")
    try:
        async with EmbeddedBroker(port=0, accounts=ROLES, devices_file=devices) as broker:
            def settings(user: str) -> BusSettings:
                password = ROLES.get(user) or MIRRORS[user]
                return BusSettings(BrokerURL("127.0.0.1", broker.port, user, password),
                                   connect_timeout=2.0, request_timeout=2.0)

            def bus(user: str, client_id: str | None = None) -> Bus:
                return Bus(settings(user), role=user, client_id=client_id)

            async with (
                run_messaging(settings("messaging"),
                              messaging_settings(tmp_path, url)) as messaging,
                bus("bridge") as bridge,
                bus("hall", "hall") as hall,
                bus("device") as device,
            ):
                heard: list[Message] = []

                async def collect(message: Message) -> None:
                    heard.append(message)

                for intruder in (hall, device):
                    await intruder.subscribe_raw(intruder.reply_topic, collect)
                    for operation, body in ((FILES_BEGIN, {"owner": "ann"}),
                                            (FILES_STAT, {"owner": "ann", "type": "profile",
                                                          "name": "me.png"})):
                        await intruder.publish_raw(operation.template,
                                                   envelope(body, intruder.reply_topic))
                # The bridge is answered, on a link that carried the refused publishes first.
                with_bridge = await bridge.request(FILES_BEGIN, BeginUpload(owner="ann"))
                assert with_bridge.upload_id
                with pytest.raises(ServiceError) as answered:
                    await bridge.request(FILES_STAT, FileKey(owner="ann", type="profile",
                                                             name="me.png"))
                assert answered.value.code == MessagingError.FILE_NOT_FOUND
                await asyncio.sleep(0.3)
                assert heard == []
                assert messaging.files.uploads_going() == 1  # the bridge's alone
    finally:
        await drop_database(url)


async def test_the_mirrors_listener_of_mosquitto_keeps_them_off_svc(fleet: Fleet) -> None:
    async with service(fleet, "messaging", "messaging-main") as svc, \
            mirror(fleet, "mirA", "mirA") as mir:
        await svc.subscribe("svc/messaging/#", qos=1)
        await svc.subscribe("mirrors/+/frame", qos=1)
        await mir.publish(FILES_BEGIN.template, envelope({"owner": "ann"}, "reply/mirA"), qos=1)
        await mir.publish("mirrors/mirA/frame", b"jpeg", qos=1)  # after it, on one link
        async with asyncio.timeout(5):
            async for message in svc.messages:
                assert message.topic.value == "mirrors/mirA/frame"
                break
