"""Mirrors' camera frames over MQTT: results per mirror, newest frame wins, drops counted, and
a mirror's stream named on every frame as each frame alone would be."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator

import pytest

from broker.client import Bus, Message
from schemas.faces import VISION_DELETE_SUBJECT, SubjectRequest
from schemas.vision import (
    MIRROR_FACE_EVENT,
    MIRROR_FRAME,
    VISION_ENROL,
    VISION_RECOGNIZED,
    EnrolRequest,
    FaceEvent,
    Recognized,
)
from services.vision.faces import Faces
from tests.conftest import ACCOUNTS, FACES, Backend, needs_photos
from tests.services.vision.support import Photos
from tests.support import unique

pytestmark = needs_photos


@pytest.fixture
async def mirror(backend: Backend, vision_service: Faces) -> AsyncIterator[tuple[Bus, str]]:
    async with Bus(backend.bus("test"), role="mirror") as bus:
        yield bus, unique("mirror")


async def collect(bus: Bus, topic: str, into: asyncio.Queue[bytes]) -> None:
    async def put(message: Message) -> None:
        await into.put(message.payload)

    await bus.subscribe_raw(topic, put)
    await asyncio.sleep(0.2)


async def test_a_frame_yields_names_and_the_domain_event(mirror: tuple[Bus, str]) -> None:
    bus, mirror_id = mirror
    name = unique("kit")
    photo = (FACES / "train/kit_harington/john1.jpeg").read_bytes()
    # Over the bus, like any client: a session fixture's database context is not the test's.
    await bus.request(VISION_ENROL, EnrolRequest(name=name, image=photo), timeout=30)
    events: asyncio.Queue[bytes] = asyncio.Queue()
    seen: asyncio.Queue[bytes] = asyncio.Queue()
    await collect(bus, MIRROR_FACE_EVENT.format(mirror_id=mirror_id), events)
    await collect(bus, VISION_RECOGNIZED.template, seen)

    try:
        frame = (FACES / "test/johnsnow_test1.jpg").read_bytes()
        await bus.publish(MIRROR_FRAME, frame, qos=1, mirror_id=mirror_id)
        event = FaceEvent.model_validate_json(await asyncio.wait_for(events.get(), 20))
        assert event.mirror_id == mirror_id and event.error is None
        assert [face.name for face in event.faces] == [name]
        while True:
            recognized = Recognized.model_validate_json(await asyncio.wait_for(seen.get(), 20))
            if recognized.mirror_id == mirror_id:
                break
        assert recognized.names == [name] and recognized.unknown == 0
        # The session's vision service runs with liveness off (tests/conftest.py).
        assert (event.faces[0].live, event.faces[0].live_reason) == (None, "liveness is off")
    finally:
        # The session's vision service is shared: a train photo left enrolled under this name
        # would tie with other tests' enrolment of the same photo.
        await bus.request(VISION_DELETE_SUBJECT, SubjectRequest(id=name), timeout=30)


async def test_bad_frames_get_an_error_event_and_the_worker_lives_on(
    mirror: tuple[Bus, str],
) -> None:
    bus, mirror_id = mirror
    events: asyncio.Queue[bytes] = asyncio.Queue()
    await collect(bus, MIRROR_FACE_EVENT.format(mirror_id=mirror_id), events)
    topic = MIRROR_FRAME.format(mirror_id=mirror_id)
    for payload in (b"not an image", (FACES / "test/obama1.jpg").read_bytes()[:3000]):
        await bus.publish_raw(topic, payload, qos=1)
        event = FaceEvent.model_validate_json(await asyncio.wait_for(events.get(), 20))
        assert event.error is not None and event.faces == []
    await bus.publish_raw(topic, (FACES / "test/obama1.jpg").read_bytes(), qos=1)
    event = FaceEvent.model_validate_json(await asyncio.wait_for(events.get(), 20))
    assert event.error is None and len(event.faces) == 1


async def test_newest_frame_wins_and_drops_are_counted(mirror: tuple[Bus, str]) -> None:
    bus, mirror_id = mirror
    events: asyncio.Queue[bytes] = asyncio.Queue()
    await collect(bus, MIRROR_FACE_EVENT.format(mirror_id=mirror_id), events)
    frame = (FACES / "test/obama_and_biden.jpg").read_bytes()
    sent = 12
    for _ in range(sent):  # far faster than one analysis
        await bus.publish(MIRROR_FRAME, frame, qos=1, mirror_id=mirror_id)
    analysed, dropped = 0, 0
    while analysed + dropped < sent:
        event = FaceEvent.model_validate_json(await asyncio.wait_for(events.get(), 30))
        analysed += 1
        dropped += event.dropped
    assert analysed + dropped == sent
    assert dropped > 0 and analysed < sent


@pytest.mark.skipif(not shutil.which("mosquitto_pub"), reason="mosquitto-clients not installed")
async def test_mosquitto_pub_file_as_a_frame(mirror: tuple[Bus, str], backend: Backend) -> None:
    bus, mirror_id = mirror
    events: asyncio.Queue[bytes] = asyncio.Queue()
    await collect(bus, MIRROR_FACE_EVENT.format(mirror_id=mirror_id), events)
    topic = backend.namespace + MIRROR_FRAME.format(mirror_id=mirror_id)
    process = await asyncio.create_subprocess_exec(
        "mosquitto_pub", "-h", backend.broker_host, "-p", str(backend.broker_port),
        # QoS 1: mosquitto_pub waits for the broker's PUBACK before it disconnects. At QoS 0
        # amqtt may handle the DISCONNECT first and drop the frame.
        "-u", "test", "-P", ACCOUNTS["test"], "-t", topic, "-q", "1",
        "-f", str(FACES / "test/obama1.jpg"),
    )
    assert await process.wait() == 0
    event = FaceEvent.model_validate_json(await asyncio.wait_for(events.get(), 20))
    assert len(event.faces) == 1 and event.error is None


async def test_streams_of_two_mirrors_are_named_on_every_frame(
    mirror: tuple[Bus, str], photos: Photos
) -> None:
    """The Hamilton clip one frame in flight, to two mirrors at once, one of them backwards:
    the faces of every frame are found as the frame alone would have them, and named."""
    bus, mirror_id = mirror
    name = unique("lin")
    enrolment = (FACES / "video/hamilton/frame_100.jpg").read_bytes()
    await bus.request(VISION_ENROL, EnrolRequest(name=name, image=enrolment), timeout=30)
    clip = photos.listing("video/hamilton")
    streams = {mirror_id: clip, unique("mirror"): clip[::-1]}
    queues: dict[str, asyncio.Queue[bytes]] = {}
    for stream in streams:
        queues[stream] = asyncio.Queue()
        await collect(bus, MIRROR_FACE_EVENT.format(mirror_id=stream), queues[stream])

    async def play(stream: str) -> list[list[str | None]]:
        seen = []
        for relative in streams[stream]:
            await bus.publish(MIRROR_FRAME, (FACES / relative).read_bytes(), qos=1,
                              mirror_id=stream)
            event = FaceEvent.model_validate_json(
                await asyncio.wait_for(queues[stream].get(), 30))
            assert event.error is None and event.dropped == 0
            seen.append([face.name for face in event.faces])
        return seen

    played = await asyncio.gather(*(play(stream) for stream in streams))
    for stream, seen in zip(streams, played, strict=True):
        expected = [[name] * len(photos.faces(relative)) for relative in streams[stream]]
        assert seen == expected, stream
        assert sum(map(len, seen)) == 70
