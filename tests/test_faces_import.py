"""``mirrorhub faces import``: the shared train/ photos plus made failures (a file that is no
image, a photo of two people, a stray file) enrolled over MQTT into a vision service of its own;
the summary names each failure with its reason; a second run, through the command itself,
skips everything enrolled before. On PostgreSQL the vision database's connections stay within
the service's pool while photos are sent four at a time."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import cv2
import numpy as np
import pytest

from broker.client import Bus
from mirrorhub.faces_import import Importer, Summary, photos_in
from services.vision.config import VisionSettings
from services.vision.faces import Faces
from services.vision.service import run_vision
from tests.conftest import (
    FACES,
    Backend,
    create_database,
    drop_database,
    isolated,
    needs_photos,
)
from tests.roles import ROOT, cli_env
from tests.support import POSTGRES_ADMIN_DSN, unique

TRAIN = FACES / "train"
pytestmark = needs_photos
POOL_MAX = 5  # tortoise's asyncpg pool, unless the URL says otherwise


def two_faces() -> bytes:
    """One photo of two people, side by side, from two real photos of one height."""
    images = [cv2.imread(str(TRAIN / photo)) for photo in ("biden/biden.jpg", "obama/obama.jpg")]
    assert all(img is not None for img in images)
    height = min(img.shape[0] for img in images if img is not None)
    scaled = [cv2.resize(img, (img.shape[1] * height // img.shape[0], height))
              for img in images if img is not None]
    ok, data = cv2.imencode(".jpg", np.hstack(scaled))
    assert ok
    return bytes(data)


def source_folder(root: Path) -> Path:
    source = root / "people"
    shutil.copytree(TRAIN, source)
    (source / "obama" / "notes.jpg").write_text("not a photo at all\n")
    (source / "pair").mkdir()
    (source / "pair" / "two.jpg").write_bytes(two_faces())
    (source / "stray.jpg").write_bytes((TRAIN / "biden" / "biden.jpg").read_bytes())
    return source


@contextlib.asynccontextmanager
async def vision_of_its_own(backend: Backend, data_dir: Path) -> AsyncIterator[tuple[Backend,
                                                                                   Faces, str]]:
    own = isolated(backend)
    if own.shared_group is not None:
        own = replace(own, shared_group=unique("vision"))
    url = await create_database(backend, "import")
    settings = VisionSettings(data_dir=data_dir, database_url=url, threshold=None)
    try:
        async with run_vision(own.bus("vision"), settings) as faces:
            yield own, faces, url
    finally:
        await drop_database(url)


async def connections_of(url: str, seen: list[int]) -> None:
    """Sample how many connections the database at ``url`` has, until cancelled."""
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        while True:
            seen.append(await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1",
                url.rsplit("/", 1)[1]))
            await asyncio.sleep(0.02)
    finally:
        await admin.close()


def failures_by_file(summary: Summary) -> dict[str, str]:
    return {Path(failure.path).name: failure.code for failure in summary.failures}


@pytest.mark.timeout(300)
async def test_import_reports_failures_and_a_second_run_skips_everything(
    backend: Backend, tmp_path: Path,
) -> None:
    source = source_folder(tmp_path)
    photos, stray = photos_in(source)
    train = sorted(TRAIN.glob("*/*"))
    assert len(photos) == len(train) + 2
    async with vision_of_its_own(backend, tmp_path) as (own, faces, url):
        seen: list[int] = []
        watch = (asyncio.create_task(connections_of(url, seen))
                 if url.startswith("postgres") else None)
        advanced: list[int] = []
        try:
            async with Bus(own.bus("test")) as bus:
                first = await Importer(bus, advance=lambda: advanced.append(1)).run(photos,
                                                                                  stray)
        finally:
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
        assert first.enrolled == len(train) and first.skipped == 0
        assert failures_by_file(first) == {"notes.jpg": "not_an_image", "two.jpg": "face_count",
                                           "stray.jpg": "no_person"}
        two = next(f for f in first.failures if f.code == "face_count")
        assert two.name == "pair" and "found 2 faces" in two.message
        assert len(advanced) == len(photos)  # the bar reaches its end
        assert len(faces.gallery) == len(train)
        assert {"biden", "obama", "kit_harington"} <= faces.gallery.subjects
        if watch is not None:
            assert seen and max(seen) <= POOL_MAX, seen

        # Again, through the command: everything enrolled before is skipped, nothing is sent.
        env = cli_env(own, MIRRORHUB_DATA_DIR=str(tmp_path))
        command = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mirrorhub.cli", "faces", "import", str(source), "--json",
            env=env, cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(command.communicate(), 120)
        assert command.returncode == 1, err.decode()[-2000:]  # 1: some photos failed
        second = json.loads(out)
        assert second["enrolled"] == 0 and second["skipped"] == len(train)
        assert second["failed"] == 3
        assert {Path(f["path"]).name: f["code"] for f in second["failures"]} == \
            failures_by_file(first)
        assert len(faces.gallery) == len(train)


async def test_a_csv_lists_photos_and_the_same_photo_is_sent_once(
    backend: Backend, tmp_path: Path,
) -> None:
    listing = tmp_path / "photos.csv"
    listing.write_text("name,path\n"
                       f"kit,{TRAIN / 'kit_harington' / 'john1.jpeg'}\n"
                       f"kit,{TRAIN / 'kit_harington' / 'john1.jpeg'}\n"
                       "rose,missing.jpg\n"
                       "only-a-name\n")
    photos, bad = photos_in(listing)
    assert [p.name for p in photos] == ["kit", "kit", "rose"]
    assert [(f.path, f.code) for f in bad] == [(f"{listing}:5", "no_person")]
    async with (vision_of_its_own(backend, tmp_path) as (own, faces, _),
                Bus(own.bus("test")) as bus):
        summary = await Importer(bus).run(photos, bad)
    assert (summary.enrolled, summary.skipped) == (1, 1)
    assert failures_by_file(summary) == {"missing.jpg": "unreadable", "photos.csv:5": "no_person"}
    assert len(faces.gallery) == 1


def thousand_photos(root: Path, count: int = 1000) -> Path:
    """``count`` distinct photos of the train/ people (each a little brighter than the last),
    a folder per person."""
    source = root / "thousand"
    originals = sorted(TRAIN.glob("*/*"))
    for index in range(count):
        original = originals[index % len(originals)]
        image = cv2.imread(str(original))
        assert image is not None
        scale = 480 / max(image.shape[:2])
        if scale < 1:
            image = cv2.resize(image, None, fx=scale, fy=scale)
        brighter = cv2.convertScaleAbs(image, alpha=1.0, beta=index // len(originals) % 40)
        folder = source / original.parent.name
        folder.mkdir(parents=True, exist_ok=True)
        ok, data = cv2.imencode(".jpg", brighter, [cv2.IMWRITE_JPEG_QUALITY,
                                                   60 + index // (40 * len(originals))])
        assert ok
        (folder / f"{index:04d}.jpg").write_bytes(bytes(data))
    return source


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_a_thousand_photos_keep_within_the_pool(backend: Backend, tmp_path: Path) -> None:
    """CompreFace's users saw "too many clients" enrolling in bulk: here a thousand photos, eight
    in flight, never hold more of the vision database's connections than its pool."""
    if not backend.db_root.startswith("postgres"):
        pytest.skip("connections are PostgreSQL's: SQLite has one file")
    photos, stray = photos_in(thousand_photos(tmp_path))
    assert len({(p.path.read_bytes()) for p in photos}) == 1000
    async with vision_of_its_own(backend, tmp_path) as (own, faces, url):
        seen: list[int] = []
        watch = asyncio.create_task(connections_of(url, seen))
        try:
            async with Bus(own.bus("test")) as bus:
                first = await Importer(bus, concurrency=8, timeout=120).run(photos, stray)
                again = await Importer(bus, concurrency=8).run(photos, stray)
        finally:
            watch.cancel()
            await asyncio.gather(watch, return_exceptions=True)
    assert seen and max(seen) <= POOL_MAX, max(seen)
    # Shrunk and brightened, a few photos fail the quality checks: those, and only those.
    assert first.enrolled + len(first.failures) == 1000 and first.enrolled >= 900
    assert {f.code for f in first.failures} <= {"face_blurred", "face_too_small", "face_count"}
    assert (again.enrolled, again.skipped) == (0, first.enrolled)
    assert len(again.failures) == len(first.failures)  # tried again, refused again
    assert len(faces.gallery) == first.enrolled
