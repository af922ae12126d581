"""The vision migrations on an existing database: subjects and photos of 0002 are seed 002's
faces after 0003, with the service's threshold, no display name and no negatives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from broker.client import Bus
from schemas.faces import VISION_SUBJECT, SubjectInfo, SubjectRequest
from services.database import connection_name, tortoise_config
from services.vision.config import VisionSettings
from services.vision.dlib_engine import DlibEngine
from services.vision.service import run_vision
from tests.conftest import Backend, create_database, drop_database, isolated

APP = ("vision", "services.vision.models", "services.vision.migrations")


async def test_subjects_of_0002_are_faces_after_0003(backend: Backend, tmp_path: Path) -> None:
    url = await create_database(backend, "migrate")
    try:
        config = tortoise_config(url, *APP)
        vector = np.linspace(-0.1, 0.1, DlibEngine.dimension, dtype=np.float32).tobytes()
        async with TortoiseContext() as ctx:
            await ctx.init(config=config)
            client = ctx.db(connection_name(url, "vision"))
            await MigrationExecutor(client, config["apps"]).migrate(
                [MigrationTarget("vision", "0002_owners_and_deletions")])
            await client.execute_query(
                "INSERT INTO vision_subject (name, created_at) "
                "VALUES ('old-ann', '2024-01-02 03:04:05+00:00')")
            await client.execute_query(
                "INSERT INTO vision_face_embedding (subject_id, engine, model_version, vector, "
                "created_at) VALUES (1, $1, $2, $3, '2024-01-02 03:04:05+00:00')"
                if url.startswith("postgres") else
                "INSERT INTO vision_face_embedding (subject_id, engine, model_version, vector, "
                "created_at) VALUES (1, ?, ?, ?, '2024-01-02 03:04:05+00:00')",
                [DlibEngine.name, DlibEngine.model_version, vector])
        scoped = isolated(backend)
        settings = VisionSettings(data_dir=tmp_path, database_url=url, threshold=None)
        async with (
            run_vision(scoped.bus("vision"), settings) as faces,
            Bus(scoped.bus("bridge"), role="bridge") as bus,
        ):
            assert faces.gallery.count("old-ann") == 1
            shown = await bus.request(VISION_SUBJECT, SubjectRequest(id="old-ann"))
            assert shown == SubjectInfo(id="old-ann", name="old-ann", descriptors=1,
                                        threshold=None, negatives=0)
    finally:
        await drop_database(url)
