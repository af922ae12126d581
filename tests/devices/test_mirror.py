"""The mirror simulator on a real broker: status and Last Will, widgets, frames, displays.

In-process tests drive :class:`Mirror`; the ``mirrorhub mirror`` ones run the command as a user
would and stop it with SIGINT or SIGKILL. Every test has a topic namespace of its own.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from broker.client import Bus, Message
from devices.frames import FrameFolder
from devices.mirror import Mirror, Simulation, as_json, describe
from schemas.errors import ConfigError
from schemas.messaging import (
    MIRROR_DISPLAY,
    MIRROR_STATUS,
    MIRROR_WIDGETS,
    Display,
    DisplayMessage,
    MirrorWidgets,
)
from schemas.vision import MIRROR_FACE_EVENT, MIRROR_FRAME, FaceEvent, FaceResult
from tests.conftest import Backend, isolated, photo

MIRRORHUB = str(Path(sys.executable).parent / "mirrorhub")
MIRROR = "hall"
STATUS = MIRROR_STATUS.format(mirror_id=MIRROR)
WIDGETS = MIRROR_WIDGETS.format(mirror_id=MIRROR)
DISPLAY = MIRROR_DISPLAY.format(mirror_id=MIRROR)
FRAME = MIRROR_FRAME.format(mirror_id=MIRROR)
PHOTOS = ("obama1.jpg", "kit_with_rose.jpg", "johnsnow_test1.jpg")  # name order: j, k, o


class Watcher:
    """A test client that keeps every message on the topics it watches, per topic."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self._queues: dict[str, asyncio.Queue[Message]] = {}

    async def watch(self, *topics: str) -> None:
        for topic in topics:
            self._queues[topic] = asyncio.Queue()
            await self.bus.subscribe_raw(topic, self._collect)

    async def _collect(self, message: Message) -> None:
        await self._queues[message.topic].put(message)

    async def next(self, topic: str, timeout: float = 10.0) -> Message:
        return await asyncio.wait_for(self._queues[topic].get(), timeout)

    def pending(self, topic: str) -> int:
        return self._queues[topic].qsize()


@pytest.fixture
async def space(backend: Backend) -> AsyncIterator[Backend]:
    """The test broker under a namespace of this test's own; retained topics cleared after."""
    isolated_backend = isolated(backend)
    yield isolated_backend
    async with Bus(isolated_backend.bus("test"), role="cleaner") as bus:
        for topic in (STATUS, WIDGETS, DISPLAY):
            await bus.publish_raw(topic, b"", retain=True)


@pytest.fixture
async def watcher(space: Backend) -> AsyncIterator[Watcher]:
    async with Bus(space.bus("test"), role="watcher") as bus:
        yield Watcher(bus)


@pytest.fixture
def frames(tmp_path: Path) -> Path:
    folder = tmp_path / "frames"
    folder.mkdir()
    for name in PHOTOS:
        (folder / name).write_bytes(photo(f"test/{name}"))
    (folder / "notes.txt").write_text("not a frame")
    return folder


def a_display(**changes: object) -> Display:
    fields: dict[str, object] = {
        "mirror_id": MIRROR, "state": "present", "user": "ann", "unlocked": True,
        "layout": {"weather": (1, 2), "time": (1, 1)},
        "messages": [DisplayMessage(id=1, sender="bob", content="see you\nat 6",
                                    timestamp="2025-01-02 10:00:00")],
        "at": datetime(2025, 1, 2, 10, 0, 3, tzinfo=UTC),
    }
    return Display.model_validate(fields | changes)


# -- in process ------------------------------------------------------------------------------


async def test_status_online_and_widgets_are_retained_for_later_subscribers(
    space: Backend, watcher: Watcher,
) -> None:
    async with Mirror(space.bus("test"), MIRROR, "MX-200"):
        await watcher.watch(STATUS, WIDGETS)
        status = await watcher.next(STATUS)
        widgets = await watcher.next(WIDGETS)
    assert (status.payload, status.retain) == (b"online", True)
    assert widgets.retain
    state = MirrorWidgets.model_validate_json(widgets.payload)
    assert state.model_code == "MX-200" and "time" in state.widgets
    offline = await watcher.next(STATUS)  # a clean exit says so itself
    assert offline.payload == b"offline"


async def test_frames_are_the_files_bytes_in_name_order_at_about_fps(
    space: Backend, watcher: Watcher, frames: Path,
) -> None:
    await watcher.watch(FRAME)
    folder = FrameFolder.open(frames)
    expected = [(frames / name).read_bytes() for name in sorted(PHOTOS)]
    fps = 20.0
    async with Mirror(space.bus("test"), MIRROR, "MX-200") as mirror:
        started = time.monotonic()
        sent = await mirror.stream_frames(folder, fps, loop=True, count=5)
        elapsed = time.monotonic() - started
        received = [(await watcher.next(FRAME)).payload for _ in range(sent)]
        once = await mirror.stream_frames(folder, 30, loop=False)
        received_once = [(await watcher.next(FRAME)).payload for _ in range(once)]
    assert sent == 5 and received == (expected * 2)[:5]  # looped, unchanged
    assert once == 3 and received_once == expected
    assert 0.8 * 4 / fps <= elapsed < 4 / fps + 3  # the first frame at once, then 1/fps apart
    assert watcher.pending(FRAME) == 0


async def test_a_display_is_printed_kept_and_awaitable(
    space: Backend, watcher: Watcher,
) -> None:
    lines: list[str] = []
    async with Mirror(space.bus("test"), MIRROR, "MX-200", output=lines.append) as mirror:
        assert mirror.display is None
        await watcher.bus.publish_raw(DISPLAY, b"{not a display")
        waiting = asyncio.create_task(mirror.wait_display(lambda d: d.user == "ann"))
        await watcher.bus.publish_raw(DISPLAY, a_display())
        shown = await waiting
        event = FaceEvent(mirror_id=MIRROR, faces=[FaceResult(name="ann", box=(1, 2, 3, 4),
                                                              distance=0.3)])
        await watcher.bus.publish(MIRROR_FACE_EVENT, event, qos=0, mirror_id=MIRROR)
        async with asyncio.timeout(5):
            while mirror.face_event is None:
                await asyncio.sleep(0.02)
        with pytest.raises(TimeoutError):
            await mirror.wait_display(lambda d: d.user == "nobody", timeout=0.2)
    assert shown == a_display() == mirror.display
    assert mirror.face_event == event
    # Only the real display is printed, as one readable line.
    assert lines == ["10:00:03 hall: present ann | time(1,1) weather(1,2) | "
                     "1 message: bob: see you at 6"]


async def test_a_retained_display_is_there_when_the_mirror_connects(
    space: Backend, watcher: Watcher,
) -> None:
    idle = a_display(state="idle", user=None, unlocked=False, messages=[])
    await watcher.bus.publish_raw(DISPLAY, idle, retain=True)
    lines: list[str] = []
    async with Mirror(space.bus("test"), MIRROR, "MX-200", output=lines.append,
                      render=as_json) as mirror:
        assert await mirror.wait_display(lambda d: d.state == "idle") == idle
    assert [Display.model_validate_json(line) for line in lines] == [idle]


def test_a_person_greeted_only_is_described_so() -> None:
    greeted = a_display(unlocked=False, messages=[])
    assert describe(greeted) == "10:00:03 hall: present ann (greeted only) | " \
        "time(1,1) weather(1,2) | 0 messages"


@pytest.mark.parametrize(("changes", "error"), [
    ({"mirror_id": "hall/2"}, "one topic level"),
    ({"mirror_id": "+"}, "one topic level"),
    ({"mirror_id": "#"}, "one topic level"),
    ({"mirror_id": " "}, "whitespace"),
    ({"mirror_id": "hall\x07"}, "control characters"),
    ({"mirror_id": "m" * 300}, "at most 64 characters"),
    ({"model_code": " "}, "model code"),
    ({"fps": 0.0}, "fps must be more than 0 and at most 30"),
    ({"fps": 30.5}, "fps must be more than 0 and at most 30"),
    ({"count": 0}, "frame count must be at least 1"),
], ids=["slash", "plus", "hash", "blank-id", "control-id", "long-id", "blank-model", "fps-0",
        "fps-over-30", "count-0"])
def test_bad_input_is_refused_before_connecting(changes: dict[str, Any], error: str,
                                                frames: Path) -> None:
    given: dict[str, Any] = {"mirror_id": MIRROR, "model_code": "MX-200",
                                "frames": frames, "fps": 2.0} | changes
    with pytest.raises(ConfigError, match=error):
        Simulation.checked(**given)


def test_a_frames_folder_without_images_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a frame")
    with pytest.raises(ConfigError, match=r"holds no images \(\*\.jpg, \*\.jpeg, \*\.png\)"):
        FrameFolder.open(tmp_path)


# -- mirrorhub mirror ------------------------------------------------------------------------


def mirror_env(space: Backend, data: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(MIRRORHUB_BROKER_URL=space.bus("test").url.to_url(),
               MIRRORHUB_TOPIC_NAMESPACE=space.namespace, MIRRORHUB_DATA_DIR=str(data))
    return env


async def start_mirror(
    space: Backend, watcher: Watcher, data: Path, *args: str
) -> asyncio.subprocess.Process:
    """``mirrorhub mirror`` for mirror MIRROR, returned once it said ``online``."""
    await watcher.watch(STATUS)
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, "mirror", "--id", MIRROR, "--model-code", "MX-200", *args,
        env=mirror_env(space, data), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        online = await watcher.next(STATUS)
    except TimeoutError:
        process.kill()
        _, stderr = await process.communicate()
        raise AssertionError(f"mirrorhub mirror never said online: {stderr.decode()}") from None
    assert online.payload == b"online"
    return process


async def test_the_command_streams_prints_json_and_stops_cleanly_on_sigint(
    space: Backend, watcher: Watcher, frames: Path, tmp_path: Path,
) -> None:
    await watcher.watch(FRAME)
    process = await start_mirror(space, watcher, tmp_path, "--frames", str(frames),
                                 "--fps", "30", "--once", "--json")
    try:
        received = [(await watcher.next(FRAME)).payload for _ in PHOTOS]
        await watcher.bus.publish_raw(DISPLAY, a_display())
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 10)
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert process.returncode == 0, stderr.decode()[-2000:]
    assert b"Traceback" not in stderr
    assert received == [(frames / name).read_bytes() for name in sorted(PHOTOS)]
    assert Display.model_validate_json(line) == a_display()
    assert (await watcher.next(STATUS)).payload == b"offline"


async def test_the_last_will_says_offline_when_the_command_is_killed(
    space: Backend, watcher: Watcher, tmp_path: Path,
) -> None:
    process = await start_mirror(space, watcher, tmp_path)
    process.kill()  # SIGKILL: no goodbye, the broker must publish the will
    await process.communicate()
    assert (await watcher.next(STATUS)).payload == b"offline"
    async with Bus(space.bus("test"), role="latecomer") as bus:
        latecomer = Watcher(bus)
        await latecomer.watch(STATUS)
        status = await latecomer.next(STATUS)
    assert (status.payload, status.retain) == (b"offline", True)


async def test_a_missing_frames_folder_is_exit_code_2_with_a_plain_message(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env["MIRRORHUB_DATA_DIR"] = str(tmp_path / "data")
    missing = tmp_path / "no-such-folder"
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, "mirror", "--id", MIRROR, "--model-code", "MX-200", "--frames", str(missing),
        env=env, stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 2
    assert stderr.decode() == f"mirrorhub: frames folder {missing} does not exist\n"
    assert not (tmp_path / "data").exists()  # refused before any credentials were made
