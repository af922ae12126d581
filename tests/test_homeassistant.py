"""Home Assistant MQTT discovery, read by an independent client (aiomqtt) as Home Assistant
reads it: each mirror's retained sensor and binary sensor configs with the fields Home
Assistant's MQTT discovery documents, made when the mirror's account is made and again at the
messaging service's start (before anybody is recognised), following the person shown, and gone
(empty retained configs) when the account is removed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from broker.client import Bus
from broker.settings import BrokerURL, BusSettings
from devices.mirror import Mirror
from mirrorhub.device_events import publish_event
from schemas.homeassistant import DEVICE_REMOVED
from schemas.vision import VISION_RECOGNIZED, Recognized
from services.messaging.homeassistant import node_id
from services.messaging.service import run_messaging
from tests.conftest import (
    ACCOUNTS,
    Backend,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
)
from tests.roles import ROOT, cli_env
from tests.support import free_port, unique

PREFIX = "ha-test"  # not Home Assistant's default: the prefix is a setting
Retained = dict[str, bytes]


async def retained(backend: Backend, topic_filter: str) -> Retained:
    """What a client subscribing now is handed as retained on ``topic_filter``."""
    found: Retained = {}
    async with aiomqtt.Client(backend.broker_host, backend.broker_port, username="test",
                              password=ACCOUNTS["test"], timeout=5) as client:
        await client.subscribe(backend.namespace + topic_filter, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):  # retained ones come at once
                async for message in client.messages:
                    if not message.retain:
                        continue  # published meanwhile: the next look has it retained
                    found[str(message.topic).removeprefix(backend.namespace)] = bytes(
                        message.payload if isinstance(message.payload, bytes) else b"")
    return {topic: payload for topic, payload in found.items() if payload}


async def until(backend: Backend, topic_filter: str,
                check: Callable[[Retained], bool], within: float = 10.0) -> Retained:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        found = await retained(backend, topic_filter)
        if check(found):
            return found
        assert loop.time() < deadline, f"retained on {topic_filter}: {found}"


def configs_of(found: Retained, mirror_id: str) -> dict[str, dict[str, Any]]:
    node = node_id(mirror_id)
    return {component: json.loads(found[f"{PREFIX}/{component}/{node}/{entity}/config"])
            for component, entity in (("sensor", "person"), ("binary_sensor", "connectivity"))
            if f"{PREFIX}/{component}/{node}/{entity}/config" in found}


def check_documented_fields(configs: dict[str, dict[str, Any]], backend: Backend,
                            mirror_id: str) -> None:
    """The fields of Home Assistant's MQTT discovery docs (sensor, binary_sensor), topics as
    Home Assistant subscribes to them: on the wire, namespace included."""
    wire = backend.namespace
    sensor, binary = configs["sensor"], configs["binary_sensor"]
    for config in (sensor, binary):
        assert config["name"] and config["unique_id"]
        assert config["device"]["identifiers"] == [node_id(mirror_id)]
        assert config["device"]["name"] == f"Mirror {mirror_id}"
    assert sensor["unique_id"] != binary["unique_id"]
    assert sensor["name"] == "Person at the mirror"
    assert sensor["state_topic"] == f"{wire}mirrors/{mirror_id}/person"
    assert sensor["availability_topic"] == f"{wire}mirrors/{mirror_id}/status"
    assert (sensor["payload_available"], sensor["payload_not_available"]) == ("online",
                                                                              "offline")
    assert binary["device_class"] == "connectivity"
    assert binary["state_topic"] == f"{wire}mirrors/{mirror_id}/status"
    assert (binary["payload_on"], binary["payload_off"]) == ("online", "offline")


async def device(backend: Backend, data_dir: Path, action: str, mirror_id: str) -> int:
    """``mirrorhub device ACTION MIRROR`` against ``backend``'s broker; its exit status (stderr
    must not say that the services were not told)."""
    env = cli_env(backend, MIRRORHUB_DATA_DIR=str(data_dir))
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mirrorhub.cli", "device", action, mirror_id, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(command.communicate(), 60)
    assert "not told" not in err.decode() and "Traceback" not in err.decode(), err.decode()
    return command.returncode or 0


@contextlib.asynccontextmanager
async def messaging(backend: Backend, data_dir: Path, url: str) -> AsyncIterator[None]:
    settings = messaging_settings(data_dir, url, ha_prefix=PREFIX, instance=unique("ha"))
    async with run_messaging(backend.bus("messaging"), settings):
        yield


@pytest.mark.timeout(120)
async def test_entities_come_with_the_account_and_go_with_it(
    backend: Backend, tmp_path: Path,
) -> None:
    own = isolated(backend)
    url = await create_database(backend, "ha")
    hall = unique("hall")
    everything = f"{PREFIX}/#"
    try:
        async with messaging(own, tmp_path, url):
            # `mirrorhub device add hall` says so; the entities exist before hall ever connects.
            assert await device(own, tmp_path, "add", hall) == 0
            found = await until(own, everything, lambda f: len(configs_of(f, hall)) == 2)
            check_documented_fields(configs_of(found, hall), own, hall)
            person = f"mirrors/{hall}/person"
            assert (await until(own, person, lambda f: person in f))[person] == b"nobody"

        # Configs cleared behind its back come back at the next start, before any match.
        async with Bus(own.bus("test")) as bus:
            for topic in found:
                await bus.publish_raw(topic, b"", qos=1, retain=True)
        assert await retained(own, everything) == {}
        async with messaging(own, tmp_path, url):
            found = await until(own, everything, lambda f: len(configs_of(f, hall)) == 2)
            check_documented_fields(configs_of(found, hall), own, hall)

            async with Mirror(own.bus("test"), hall, "1234-5678"), Bus(own.bus("test")) as bus:
                status = f"mirrors/{hall}/status"
                assert (await until(own, status, lambda f: status in f))[status] == b"online"
                # Somebody recognised: the person sensor names them; nobody again when idle.
                await bus.publish(VISION_RECOGNIZED, Recognized(
                    mirror_id=hall, names=["ann"], unknown=0, at=datetime.now(UTC)))
                await until(own, person, lambda f: f.get(person) == b"ann")
                await until(own, person, lambda f: f.get(person) == b"nobody")
            assert (await until(own, status, lambda f: f.get(status) == b"offline"))

            # `mirrorhub device remove hall`: empty retained configs, and its topics cleared.
            assert await device(own, tmp_path, "remove", hall) == 0
            await until(own, everything, lambda f: not configs_of(f, hall))
            await until(own, f"mirrors/{hall}/#", lambda f: f == {})
        # ... and it does not come back with the next start.
        async with messaging(own, tmp_path, url):
            await asyncio.sleep(1.0)
            assert await retained(own, everything) == {}
    finally:
        await drop_database(url)


async def test_with_no_broker_the_command_says_the_services_were_not_told(
    tmp_path: Path,
) -> None:
    nowhere = BusSettings(url=BrokerURL("127.0.0.1", free_port(), "operator", "x"))
    why = await publish_event(nowhere, DEVICE_REMOVED, "hall")
    assert why is not None and "no MQTT broker" in why
