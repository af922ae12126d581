"""The fleet generator on a real broker with the real vision and messaging services.

A few mirrors for a few seconds: each must be shown the person whose photos it sends, a
mislabelled folder must be counted wrong, ``mirrorhub fleet`` must use each mirror's own account
of the embedded broker, and with those accounts no fleet mirror can speak for another.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from broker.access import namespaced_client_id
from broker.client import Bus, Message
from broker.protocol import Will
from broker.server import EmbeddedBroker
from devices.fleet import Fleet, FleetPlan, people_in
from mirrorhub.settings import Settings
from schemas.errors import BusUnavailable, ConfigError
from schemas.messaging import MIRROR_STATUS, MirrorWidgets
from schemas.vision import VISION_ENROL, EnrolRequest
from services.messaging.service import run_messaging
from services.vision.config import VisionSettings
from services.vision.service import run_vision
from services.vision.watch import Mode
from tests.conftest import (
    ACCOUNTS,
    FACES,
    Backend,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
    needs_photos,
)
from tests.support import unique

pytestmark = needs_photos

# Who each frames subfolder claims to show, and the photo it really holds: "biden" holds
# obama's, so the mirror playing it must be counted wrong.
CAMERAS = {"biden": "obama1.jpg", "kit_harington": "johnsnow_test1.jpg", "obama": "obama1.jpg"}


@pytest.fixture
def people(tmp_path: Path) -> Path:
    folder = tmp_path / "people"
    for name, photo in CAMERAS.items():
        (folder / name).mkdir(parents=True)
        shutil.copy(FACES / "test" / photo, folder / name / photo)
    (folder / "nobody").mkdir()  # no images: not a person
    (folder / "notes.txt").write_text("not a person")
    return folder


@contextlib.asynccontextmanager
async def recognising(own: Backend, tmp_path: Path, enrolled: tuple[str, ...]
                      ) -> AsyncIterator[None]:
    """Vision (liveness off: the camera shows still photos) and messaging on ``own``, with
    ``enrolled`` people's training photos enrolled under their folder names."""
    urls = [await create_database(own, name) for name in ("vision", "messaging")]
    vision = VisionSettings(data_dir=tmp_path, database_url=urls[0], threshold=None,
                            liveness=Mode.OFF)
    try:
        async with (
            run_vision(own.bus("vision"), vision),
            run_messaging(own.bus("messaging"),
                          messaging_settings(tmp_path, urls[1], idle_after=10.0)),
            Bus(own.bus("test"), role="enrol") as bus,
        ):
            for name in enrolled:
                for photo in sorted((FACES / "train" / name).iterdir()):
                    await bus.request(VISION_ENROL, EnrolRequest(name=name,
                                                                 image=photo.read_bytes()))
            yield
    finally:
        for url in urls:
            await drop_database(url)


async def retained(bus: Bus, topic_filter: str, count: int) -> dict[str, bytes]:
    """The first ``count`` retained messages under ``topic_filter``, by topic."""
    seen: dict[str, bytes] = {}
    done = asyncio.Event()

    async def keep(message: Message) -> None:
        if message.retain:
            seen[message.topic] = message.payload
            if len(seen) >= count:
                done.set()

    await bus.subscribe_raw(topic_filter, keep)
    await asyncio.wait_for(done.wait(), 10)
    return seen


async def test_each_mirror_is_shown_its_person_and_a_mislabelled_one_is_wrong(
    backend: Backend, tmp_path: Path, people: Path
) -> None:
    own = isolated(backend)
    prefix = unique("fleet")
    plan = FleetPlan.checked(3, fps=2, minutes=0.07, frames=people, prefix=prefix, settle=2)
    assert [person.name for person in plan.people] == sorted(CAMERAS)
    async with recognising(own, tmp_path, tuple(CAMERAS)):
        buses = dict.fromkeys(plan.mirror_ids, own.bus("test"))
        summary = await Fleet(plan, buses).run()
        async with Bus(own.bus("test"), role="check") as bus:
            statuses = await retained(bus, "mirrors/+/status", 3)
            widgets = await retained(bus, "mirrors/+/widgets", 3)
    biden = plan.mirror_ids[0]  # the folders in name order
    assert summary.mirrors == 3 and summary.people == 3
    assert summary.frames >= 3 * 2 * 3  # 2 fps for 4 s, give or take the scheduler
    assert summary.missing == (biden,)
    assert summary.wrong > 0 and all(
        (mirror, expected, shown) == (biden, "biden", "obama")
        for mirror, expected, shown, _ in summary.wrong_shown)
    assert summary.right >= 2 and len(summary.latencies) == 2
    assert 0 < max(summary.latencies) < 4.2
    assert not summary.ok
    # Each mirror said goodbye with its own status and left its own widgets.
    assert sorted(statuses) == [MIRROR_STATUS.format(mirror_id=m) for m in plan.mirror_ids]
    assert set(statuses.values()) == {b"offline"}
    assert {MirrorWidgets.model_validate_json(w).model_code for w in widgets.values()} == \
        {"FLEET-1"}
    lines = summary.lines()
    assert lines[1].startswith(f"displays: {summary.right} right, {summary.wrong} wrong, "
                               "1 missing")
    assert f"wrong: {biden} showed obama" in "\n".join(lines)


@pytest.fixture
async def device_broker(tmp_path: Path) -> AsyncIterator[tuple[Backend, Settings]]:
    """An embedded broker that keeps mirror accounts to their own topics, as ``mirrorhub up``
    does, and the settings ``mirrorhub fleet`` would read for it."""
    data = tmp_path / "data"
    data.mkdir()
    settings = Settings(data_dir=data, external_broker=None, broker_host="127.0.0.1",
                        broker_port=0, allow_anonymous=False, bridge_host="127.0.0.1",
                        bridge_port=0)
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS,
                              devices_file=settings.devices_file) as broker:
        backend = Backend("embedded+devices", broker.host, broker.port, None,
                          f"sqlite://{tmp_path}")
        yield backend, replace(settings, broker_port=broker.port)


async def test_the_command_plays_mirrors_with_their_own_accounts(
    device_broker: tuple[Backend, Settings], tmp_path: Path, people: Path
) -> None:
    own, settings = device_broker
    shutil.rmtree(people / "biden")  # every folder shows whom it says
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(MIRRORHUB_DATA_DIR=str(settings.data_dir),
               MIRRORHUB_BROKER_PORT=str(settings.broker_port))
    async with recognising(own, tmp_path, ("kit_harington", "obama")):
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mirrorhub.cli", "fleet", "--mirrors", "4", "--fps", "2",
            "--minutes", "0.07", "--frames", str(people), "--json", env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        try:
            stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    summary = json.loads(stdout)
    assert (summary["mirrors"], summary["people"], summary["wrong"]) == (4, 2, 0)
    assert summary["missing"] == [] and summary["ok"]
    assert summary["right"] >= 4 and summary["frames"] >= 4 * 2 * 3
    assert set(summary["latency"]) == {"p50", "p90", "p99", "max"}
    accounts = json.loads(settings.devices_file.read_text())
    assert sorted(accounts) == [f"fleet-{i:04d}" for i in range(4)]


async def test_a_fleet_mirror_cannot_publish_or_connect_as_another(
    device_broker: tuple[Backend, Settings], people: Path
) -> None:
    own, settings = device_broker
    plan = FleetPlan.checked(2, fps=1, minutes=1, frames=people)
    first, second = plan.mirror_ids
    buses = settings.device_buses(plan.mirror_ids)  # as the command makes them
    assert buses[first].url.username == first and buses[first].url.password
    seen: list[Message] = []

    async def keep(message: Message) -> None:
        seen.append(message)

    async with Bus(own.bus("test"), role="watch") as watch, \
            Bus(buses[first], client_id=namespaced_client_id("", first)) as mine:
        await watch.subscribe_raw("#", keep)
        for topic in ("status", "frame", "widgets", "not_me", "display"):
            await mine.publish_raw(f"mirrors/{second}/{topic}", b"offline", qos=1, retain=True)
        await mine.publish_raw(f"mirrors/{first}/frame", b"jpeg", qos=1)  # after them, one link
        async with asyncio.timeout(5):
            while not any(message.topic == f"mirrors/{first}/frame" for message in seen):
                await asyncio.sleep(0.02)
    assert [message.topic for message in seen] == [f"mirrors/{first}/frame"]
    # Nor can its account connect under the other's id, name, or leave a Will on its status.
    stolen = [
        Bus(buses[first], client_id=second),
        Bus(replace(buses[second], url=buses[second].url.with_credentials(
            second, buses[first].url.password or "")), client_id=second),
        Bus(buses[first], client_id=first,
            will=Will(MIRROR_STATUS.format(mirror_id=second), "offline", qos=1, retain=True)),
    ]
    for bus in stolen:
        with pytest.raises(BusUnavailable):
            async with bus:
                pass


def test_a_folder_without_people_is_refused(tmp_path: Path) -> None:
    shutil.copy(FACES / "test" / "obama1.jpg", tmp_path / "obama1.jpg")  # no subfolder
    with pytest.raises(ConfigError, match="one subfolder per person"):
        people_in(tmp_path)
    with pytest.raises(ConfigError, match="mirrors must be 1 to"):
        FleetPlan.checked(0, fps=1, minutes=1, frames=tmp_path)
    with pytest.raises(ConfigError, match="looks like a client id of auth's"):
        FleetPlan.checked(1, fps=1, minutes=1, frames=FACES / "train", prefix="auth")
