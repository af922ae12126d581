"""Vision workers stay in step across a broker outage: a photo enrolled while the broker is
away is stored and the enrolment succeeds (before: it failed with the row already stored), and
the other worker, which never heard of it, has it once it has reconnected and resynced its
gallery from the database they share. On a private Mosquitto, which can be killed and started
again on the same port at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from schemas.vision import EnrolRequest
from services.vision.config import VisionSettings
from services.vision.service import run_vision
from tests.conftest import ACCOUNTS, FACES, Backend, needs_photos
from tests.private_mosquitto import PrivateMosquitto

pytestmark = needs_photos


async def test_an_enrolment_during_a_broker_outage_reaches_the_other_worker(
    tmp_path: Path,
) -> None:
    with PrivateMosquitto(tmp_path / "mosquitto", passwords=ACCOUNTS) as broker:
        own = Backend("mosquitto+sqlite", "127.0.0.1", broker.port, None, f"sqlite://{tmp_path}")
        settings = VisionSettings(data_dir=tmp_path, database_url=own.database_url("vision"),
                                  threshold=None)
        async with (
            run_vision(own.bus("vision"), settings) as first,
            run_vision(own.bus("vision"), settings) as second,
        ):
            broker.kill()
            name = "rose-resync"
            photo = (FACES / "train/rose_leslie/img1.jpg").read_bytes()
            reply = await first.enrol(EnrolRequest(name=name, image=photo))
            assert reply.photos == 1
            assert first.gallery.count(name) == 1 and second.gallery.count(name) == 0
            broker.start()
            async with asyncio.timeout(45):  # reconnection backoff, then the resync (loaded CI)
                while second.gallery.count(name) == 0:
                    await asyncio.sleep(0.05)
            assert second.gallery.count(name) == 1
            assert first.gallery.count(name) == 1  # its own resync keeps one, not two
