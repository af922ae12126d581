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
from tortoise.context import TortoiseContext

from broker.client import Bus
from schemas.errors import ConfigError
from schemas.faces import VISION_DELETE_SUBJECT, VISION_REGISTER, SubjectRequest
from schemas.recognitions import (
    VISION_RECOGNITION,
    VISION_RECOGNITIONS,
    Recognition,
    RecognitionsRequest,
)
from services.database import connection_name, tortoise_config
from services.vision import models
from services.vision.config import VisionSettings
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
        backend: Backend, tmp_path: Path, faces_dir: Path) -> None:
    photo = (faces_dir / "test/obama1.jpg").read_bytes()
    async with vision(backend, tmp_path, faces_dir, timedelta(seconds=2)) as (bus, url):
        await frames(bus, "hall", photo, 1)
        (seen,) = await kept(bus, 1)
        await asyncio.sleep(2.5)  # the period, and a purge (every 0.2 s) after it
        assert await kept(bus, 1, within=0) == []
        config = tortoise_config(url, *APP)
        async with TortoiseContext() as ctx:  # gone from the table, not only from the list
            await ctx.init(config=config)
            client = ctx.db(connection_name(url, "vision"))
            table = models.Recognition._meta.db_table
            assert await client.execute_query_dict(f"SELECT id FROM {table}") == []
    assert seen.name == "obama"


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
