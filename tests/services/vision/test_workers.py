"""Several vision workers: galleries kept in step by events; frames split by $share."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

import pytest

from broker.client import Bus, Message
from schemas.vision import (
    MIRROR_FACE_EVENT,
    MIRROR_FRAME,
    EnrolRequest,
    FaceEvent,
    RecogniseRequest,
)
from services.vision.config import VisionSettings
from services.vision.service import run_vision
from tests.conftest import FACES, Backend, create_database, drop_database, isolated, needs_photos
from tests.support import unique

pytestmark = needs_photos


async def test_two_workers_share_enrolments_and_split_frames(
    backend: Backend, tmp_path: Path
) -> None:
    if backend.shared_group is None:
        pytest.skip("amqtt has no shared subscriptions: one vision worker per broker")
    backend = replace(isolated(backend), shared_group=unique("vision"))
    database = await create_database(backend, "workers")
    settings = VisionSettings(data_dir=tmp_path, database_url=database, threshold=None)
    try:
        async with (
            run_vision(backend.bus("vision"), settings) as first,
            run_vision(backend.bus("vision"), settings) as second,
            Bus(backend.bus("test"), role="mirror") as mirror,
        ):
            name = unique("rose")
            photo = (FACES / "train/rose_leslie/img1.jpg").read_bytes()
            await first.enrol(EnrolRequest(name=name, image=photo))
            loop = asyncio.get_running_loop()
            started = loop.time()
            while second.gallery.count(name) == 0:
                assert loop.time() - started < 1.0, "the other worker did not learn in 1 s"
                await asyncio.sleep(0.01)
            test = (FACES / "test/kit_with_rose.jpg").read_bytes()
            reply = await second.recognise(RecogniseRequest(image=test))
            assert name in {face.name for face in reply.faces}

            events: asyncio.Queue[FaceEvent] = asyncio.Queue()

            async def collect(message: Message) -> None:
                await events.put(FaceEvent.model_validate_json(message.payload))

            await mirror.subscribe(MIRROR_FACE_EVENT, collect)
            await asyncio.sleep(0.2)
            frame = (FACES / "test/obama1.jpg").read_bytes()
            for index in range(6):  # six mirrors, one frame each: nothing to drop
                await mirror.publish(MIRROR_FRAME, frame, qos=1, mirror_id=f"m{index}")
            seen = [await asyncio.wait_for(events.get(), 30) for _ in range(6)]
            assert {event.mirror_id for event in seen} == {f"m{i}" for i in range(6)}
            assert len({event.worker for event in seen}) == 2, "both workers took frames"

            # One mirror's stream, its frames split between the workers: each frame names the
            # person, whichever worker has (or has not) his track.
            lin = unique("lin")
            clip = sorted((FACES / "video/hamilton").glob("*.jpg"))[:20]
            await first.enrol(EnrolRequest(name=lin, image=clip[15].read_bytes()))
            while second.gallery.count(lin) == 0:
                await asyncio.sleep(0.01)
            workers = set()
            for frame in clip:
                await mirror.publish(MIRROR_FRAME, frame.read_bytes(), qos=1, mirror_id="hall")
                event = await asyncio.wait_for(events.get(), 30)
                assert event.mirror_id == "hall" and [face.name for face in event.faces] == [lin]
                workers.add(event.worker)
            assert len(workers) == 2
    finally:
        await drop_database(database)
