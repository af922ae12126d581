"""The recognitions vision keeps (services/vision/recognitions.py): one row when a person
appears at a mirror (not one per frame), listed newest first, announced, deleted with the
subject, and purged after the retention period. Real frames of a real photo through a running
vision service, on both backends."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.errors import ConfigError
from schemas.faces import VISION_DELETE_SUBJECT, VISION_REGISTER, SubjectRequest
from schemas.recognitions import (
    VISION_RECOGNITION,
    VISION_RECOGNITIONS,
    Recognition,
    RecognitionsRequest,
)
from schemas.vision import FaceResult
from services.database import open_database
from services.vision import models
from services.vision.config import VisionSettings
from services.vision.recognitions import Recognitions
from services.vision.service import run_vision
from tests.conftest import Backend, create_database, drop_database, isolated
from tests.support import overhear

APP = ("vision", "services.vision.models", "services.vision.migrations")


@contextlib.asynccontextmanager
async def vision(backend: Backend, tmp_path: Path, faces_dir: Path,
                 retention: timedelta) -> AsyncIterator[tuple[Bus, str]]:
    """A vision service with obama enrolled, and a bridge's Bus to it; yields the database URL
    too (dropped afterwards)."""
    own = isolated(backend)
    url = await create_database(backend, "recognitions")
    settings = replace(VisionSettings(data_dir=tmp_path, database_url=url, threshold=None),
                       retention=retention, processes=0)
    try:
        async with (run_vision(own.bus("vision"), settings),
                    Bus(own.bus("bridge"), role="bridge") as bus):
            await bus.request(VISION_REGISTER, {
                "id": "obama", "image": _b64(faces_dir / "train/obama/obama.jpg"), "new": True})
            yield bus, url
    finally:
        await drop_database(url)


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


async def kept(bus: Bus, count: int, within: float = 15.0) -> list[Recognition]:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        reply = await bus.request(VISION_RECOGNITIONS, RecognitionsRequest())
        if len(reply.recognitions) >= count or loop.time() > deadline:
            return reply.recognitions
        await asyncio.sleep(0.1)


async def frames(bus: Bus, mirror_id: str, photo: bytes, count: int) -> None:
    for _ in range(count):
        await bus.publish_raw(f"mirrors/{mirror_id}/frame", photo, qos=1)
        await asyncio.sleep(0.3)


async def test_a_person_at_a_mirror_is_kept_once_listed_and_announced(
        backend: Backend, tmp_path: Path, faces_dir: Path) -> None:
    photo = (faces_dir / "test/obama1.jpg").read_bytes()
    async with vision(backend, tmp_path, faces_dir, timedelta(days=30)) as (bus, _):
        announced = await overhear(bus, VISION_RECOGNITION.filter)
        await frames(bus, "hall", photo, 4)
        (seen,) = await kept(bus, 1)
        await asyncio.sleep(1.0)  # the later frames were analysed too, and kept nothing
        assert len(await kept(bus, 2, within=0)) == 1
        assert (seen.mirror_id, seen.name, seen.trusted) == ("hall", "obama", False)
        assert seen.distance is not None and 0 < seen.distance < 0.6
        assert seen.live is False and seen.live_reason  # a still photo has shown nothing
        event = Recognition.model_validate_json((await asyncio.wait_for(
            announced.get(), 5)).payload)
        assert event == seen
        await frames(bus, "porch", photo, 1)  # another mirror is news
        newest, older = await kept(bus, 2)
        assert (newest.mirror_id, older.mirror_id) == ("porch", "hall")
        assert newest.id > older.id
        page = await bus.request(VISION_RECOGNITIONS, RecognitionsRequest(before=newest.id))
        assert page.recognitions == [older]
        # Deleting the face deletes what was kept of it.
        await bus.request(VISION_DELETE_SUBJECT, SubjectRequest(id="obama"))
        assert await kept(bus, 1, within=0) == []


async def test_recognitions_older_than_the_retention_period_are_purged(
        backend: Backend) -> None:
    """The keeping and purging part alone, on the service's real database and a real bus (the
    frames' way to it is the test above's): a two-second period, purged every 0.2 s."""
    url = await create_database(backend, "retention")
    seen = FaceResult(name="obama", box=(0, 0, 10, 10), distance=0.3, live=False,
                      live_reason="passive: no evidence yet")
    try:
        async with (open_database(url, *APP),
                    Bus(isolated(backend).bus("vision"), role="vision") as bus):
            kept_here = Recognitions(bus, timedelta(seconds=2))
            await kept_here.seen("hall", [seen], [])
            (row,) = (await kept_here.recent(RecognitionsRequest())).recognitions
            assert (row.mirror_id, row.name, row.distance) == ("hall", "obama", 0.3)
            purging = asyncio.create_task(kept_here.purge_loop())
            try:
                await asyncio.sleep(1.0)
                assert await models.Recognition.all().count() == 1  # not before its time
                await asyncio.sleep(1.5)
                assert await models.Recognition.all().count() == 0  # gone from the table
                assert (await kept_here.recent(RecognitionsRequest())).recognitions == []
            finally:
                purging.cancel()
    finally:
        await drop_database(url)


def test_the_retention_period_comes_from_the_environment(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MIRRORHUB_RETENTION_DAYS", raising=False)
    assert VisionSettings.from_env(tmp_path).retention == timedelta(days=30)
    monkeypatch.setenv("MIRRORHUB_RETENTION_DAYS", "0.5")
    assert VisionSettings.from_env(tmp_path).retention == timedelta(hours=12)
    for bad in ("0", "-1", "a week"):
        monkeypatch.setenv("MIRRORHUB_RETENTION_DAYS", bad)
        with pytest.raises(ConfigError, match="MIRRORHUB_RETENTION_DAYS"):
            VisionSettings.from_env(tmp_path)
