"""Mirrors keep to their own topics on the embedded broker; services and operators do not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from broker.access import (
    Access,
    client_id_may,
    id_owner,
    mirror_may,
    mirror_will_may,
    namespaced_client_id,
)
from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from schemas.errors import AccessDenied, BusUnavailable

ACCOUNTS = {"svc": "svc-secret", "device": "shared-secret"}
DEVICES = {"hall": "hall-secret", "bath": "bath-secret"}


@pytest.mark.parametrize(("mirror_id", "topic", "access", "allowed"), [
    ("hall", "mirrors/hall/frame", Access.PUBLISH, True),
    ("hall", "mirrors/hall/widgets", Access.PUBLISH, True),
    ("hall", "mirrors/hall/status", Access.PUBLISH, True),
    ("hall", "mirrors/hall/not_me", Access.PUBLISH, True),  # its user says "not me"
    ("hall", "mirrors/bath/not_me", Access.PUBLISH, False),  # only for itself
    ("hall", "mirrors/hall/display", Access.PUBLISH, False),  # the service's to say
    ("hall", "mirrors/bath/frame", Access.PUBLISH, False),
    ("hall", "events/vision/recognized", Access.PUBLISH, False),
    ("hall", "svc/auth/login", Access.PUBLISH, False),
    ("hall", "svc/auth/deletions", Access.PUBLISH, False),  # who was deleted: not a mirror's
    ("hall", "svc/vision/enrol", Access.PUBLISH, False),
    ("+", "svc/vision/enrol", Access.PUBLISH, False),
    ("hall", "svc/vision/known_photos", Access.PUBLISH, False),  # which photos are enrolled
    ("+", "svc/vision/thumbnail", Access.PUBLISH, False),  # a kept face crop: the admin page's
    ("hall", "events/devices/removed", Access.PUBLISH, False),  # only operators say so
    ("hall", "svc/auth/audit", Access.PUBLISH, False),  # the admins' audit log
    ("hall", "svc/auth/export", Access.PUBLISH, False),  # a user's data
    ("+", "svc/messaging/export", Access.PUBLISH, False),
    ("+", "events/devices/added", Access.PUBLISH, False),
    ("hall", "homeassistant/sensor/mirrorhub_hall/person/config", Access.PUBLISH, False),
    ("hall", "mirrors/hall/person", Access.PUBLISH, False),  # the service's to say
    ("hall", "mirrors/hall/display", Access.SUBSCRIBE, True),
    ("hall", "mirrors/hall/events/#", Access.SUBSCRIBE, True),
    ("hall", "mirrors/+/display", Access.SUBSCRIBE, False),
    ("hall", "mirrors/#", Access.SUBSCRIBE, False),
    ("hall", "mirrors/bath/display", Access.RECEIVE, False),
    ("hall", "reply/hall-1", Access.SUBSCRIBE, True),
    ("hall", "reply/bridge-1", Access.SUBSCRIBE, False),
    ("hall", "reply/+", Access.SUBSCRIBE, False),
    ("hall", "#", Access.SUBSCRIBE, False),
    ("+", "mirrors/+/display", Access.SUBSCRIBE, True),
    ("+", "mirrors/bath/frame", Access.PUBLISH, True),
    ("+", "events/vision/recognized", Access.PUBLISH, False),
])
def test_rules(mirror_id: str, topic: str, access: Access, allowed: bool) -> None:
    assert mirror_may(mirror_id, "hall-1", topic, access) is allowed


def test_rules_apply_below_the_namespace() -> None:
    assert mirror_may("hall", "c", "prod/mirrors/hall/frame", Access.PUBLISH, "prod/")
    assert not mirror_may("hall", "c", "mirrors/hall/frame", Access.PUBLISH, "prod/")
    assert not mirror_may("hall", "c", "test/mirrors/hall/frame", Access.PUBLISH, "prod/")


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[tuple[EmbeddedBroker, Path]]:
    devices = tmp_path / "device_accounts.json"
    devices.write_text(json.dumps(DEVICES))
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS, devices_file=devices) as running:
        yield running, devices


def bus(broker: EmbeddedBroker, user: str, password: str) -> Bus:
    url = BrokerURL("127.0.0.1", broker.port, user, password)
    # A mirror's own account connects under its mirror id, as devices.mirror.Mirror does.
    return Bus(BusSettings(url, connect_timeout=2.0), role=user,
               client_id=user if user not in ACCOUNTS else None)


class Inbox:
    def __init__(self) -> None:
        self.topics: list[str] = []

    async def put(self, message: Message) -> None:
        self.topics.append(message.topic)

    async def wait_for(self, topic: str) -> None:
        async with asyncio.timeout(5):
            while topic not in self.topics:
                await asyncio.sleep(0.01)


async def test_a_mirror_publishes_only_its_own_topics(
    broker: tuple[EmbeddedBroker, Path],
) -> None:
    running, _ = broker
    seen = Inbox()
    async with bus(running, "svc", "svc-secret") as service, \
            bus(running, "hall", "hall-secret") as hall:
        await service.subscribe_raw("#", seen.put)
        for forbidden in ("events/vision/recognized", "mirrors/bath/frame",
                          "mirrors/hall/display", "svc/auth/login", "mirrors/bath/not_me",
                          "svc/vision/delete_subject", "svc/auth/admin_register",
                          "svc/vision/liveness_challenge", "svc/vision/liveness_verify",
                          "events/vision/challenge_used",
                          "svc/vision/known_photos", "svc/vision/thumbnail",
                          "events/devices/removed",
                          "homeassistant/sensor/mirrorhub_hall/person/config"):
            await hall.publish_raw(forbidden, b"{}", qos=1)
        await hall.publish_raw("mirrors/hall/frame", b"jpeg", qos=1)  # after them, on one link
        await seen.wait_for("mirrors/hall/frame")
        assert seen.topics == ["mirrors/hall/frame"]


async def test_a_mirror_reads_only_its_own_display(broker: tuple[EmbeddedBroker, Path]) -> None:
    running, _ = broker
    mine = Inbox()
    async with bus(running, "svc", "svc-secret") as service, \
            bus(running, "hall", "hall-secret") as hall:
        for other in ("mirrors/+/display", "mirrors/bath/display", "#", "events/#"):
            with pytest.raises(AccessDenied):
                await hall.subscribe_raw(other, mine.put)
        await hall.subscribe_raw("mirrors/hall/#", mine.put)
        await service.publish_raw("mirrors/bath/display", b"bob's messages", qos=1)
        await service.publish_raw("mirrors/hall/display", b"ann's messages", qos=1)
        await mine.wait_for("mirrors/hall/display")
        assert mine.topics == ["mirrors/hall/display"]


async def test_the_shared_device_account_is_kept_to_mirror_topics(
    broker: tuple[EmbeddedBroker, Path],
) -> None:
    running, _ = broker
    seen = Inbox()
    async with bus(running, "svc", "svc-secret") as service, \
            bus(running, "device", "shared-secret") as device:
        await service.subscribe_raw("#", seen.put)
        await device.subscribe_raw("mirrors/+/display", seen.put)  # any mirror: not private
        await device.publish_raw("events/vision/recognized", b"{}", qos=1)
        await device.publish_raw("mirrors/bath/frame", b"jpeg", qos=1)
        await seen.wait_for("mirrors/bath/frame")
        assert "events/vision/recognized" not in seen.topics


async def test_accounts_added_and_removed_while_the_broker_runs(
    broker: tuple[EmbeddedBroker, Path],
) -> None:
    running, devices = broker
    with pytest.raises(BusUnavailable, match="refused the credentials"):
        async with bus(running, "hall", "wrong"):
            pass
    devices.write_text(json.dumps({**DEVICES, "attic": "attic-secret"}))
    async with bus(running, "attic", "attic-secret") as attic:
        assert attic.connected
    devices.write_text(json.dumps({"bath": "bath-secret"}))
    with pytest.raises(BusUnavailable, match="refused the credentials"):
        async with bus(running, "hall", "hall-secret"):
            pass


@pytest.mark.parametrize(("client_id", "owner"), [
    ("messaging-main", "messaging"), ("test-ab12-messaging-main", "messaging"),
    ("bridge-3f2a", "bridge"), ("auth-1", "auth"), ("messaging", None), ("hall", None),
    ("mosq-auth", None), ("mirror-1234", None),
])
def test_client_ids_owned_by_a_role(client_id: str, owner: str | None) -> None:
    assert id_owner(client_id) == owner


def test_a_mirror_uses_its_own_id_namespaced_like_the_services() -> None:
    assert client_id_may("hall", True, "hall")
    assert client_id_may("hall", True, "prod-hall", "prod/")
    assert not client_id_may("hall", True, "hall", "prod/")
    assert not client_id_may("hall", True, "hall-2")
    assert namespaced_client_id("prod/eu/", "hall") == "prod-eu-hall"


@pytest.mark.parametrize(("topic", "mirror_id", "allowed"), [
    ("mirrors/hall/status", "hall", True), ("mirrors/hall/frame", "hall", False),
    ("mirrors/bath/status", "hall", False), ("mirrors/bath/status", "+", True),
    ("mirrors/+/status", "+", False), ("events/vision/recognized", "+", False),
    ("prod/mirrors/hall/status", "hall", False),
])
def test_a_mirrors_last_will(topic: str, mirror_id: str, allowed: bool) -> None:
    assert mirror_will_may(mirror_id, topic) is allowed
