"""The messaging migrations on an existing database: messages stored before files (0002) keep
their content and have no attachment; the file table is there for new uploads."""

from __future__ import annotations

from pathlib import Path

from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from broker.client import Bus
from schemas.files import FILES_BEGIN, FILES_CHUNK, FILES_COMMIT, BeginUpload, CommitUpload
from schemas.files import UploadChunk as Chunk
from schemas.messaging import MESSAGING_HISTORY, HistoryRequest
from services.database import connection_name, tortoise_config
from services.messaging.service import run_messaging
from tests.conftest import Backend, create_database, drop_database, isolated, messaging_settings

APP = ("messaging", "services.messaging.models", "services.messaging.migrations")


async def test_messages_of_0001_are_read_after_0002(backend: Backend, tmp_path: Path) -> None:
    url = await create_database(backend, "migrate")
    try:
        config = tortoise_config(url, *APP)
        async with TortoiseContext() as ctx:
            await ctx.init(config=config)
            client = ctx.db(connection_name(url, "messaging"))
            await MigrationExecutor(client, config["apps"]).migrate(
                [MigrationTarget("messaging", "0001_initial")])
            # The columns of 0001 only (the model has more by now).
            await client.execute_query(
                "INSERT INTO messaging_message (message_id, sender, receiver, content, "
                "created_at) VALUES ('old-1', 'bob', 'ann', 'from before files', "
                "'2024-01-02 03:04:05+00:00')")
        scoped = isolated(backend)
        async with (
            run_messaging(scoped.bus("messaging"), messaging_settings(tmp_path, url)),
            Bus(scoped.bus("bridge"), role="bridge") as bus,
        ):
            listed = await bus.request(MESSAGING_HISTORY, HistoryRequest(username="ann"))
            [old] = listed.messages
            assert (old.sender, old.receiver, old.content, old.attachment) == (
                "bob", "ann", "from before files", None)
            started = await bus.request(FILES_BEGIN, BeginUpload(owner="ann"))
            await bus.request(FILES_CHUNK, Chunk(upload_id=started.upload_id, seq=0,
                                                 data=b"new"))
            stored = await bus.request(FILES_COMMIT, CommitUpload(
                upload_id=started.upload_id, type="docs", name="new.txt"))
            assert stored.size == 3
    finally:
        await drop_database(url)
