"""A vision worker process that dies (kill -9, as the OOM killer would) is replaced: the call
it was running, or the next one, is answered ``unavailable`` ("try again"), and the service
answers again with new workers, without a restart. Before, the pool stayed broken and every
later call failed while the service lived on."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from pathlib import Path

import pytest

from broker.server import EmbeddedBroker
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from schemas.vision import RecogniseRequest
from services.vision.config import VisionSettings
from services.vision.service import run_vision
from tests.conftest import ACCOUNTS, FACES, Backend, needs_photos

# Slow: it waits for two worker processes to load their models (10 s or more); the default run
# is near its time budget. tests/test_faults.py kills the worker of the fleet layout too.
pytestmark = [
    needs_photos,
    pytest.mark.slow, pytest.mark.timeout(300),
]


async def test_a_killed_worker_process_is_replaced(tmp_path: Path) -> None:
    settings = VisionSettings(data_dir=tmp_path, database_url=f"sqlite://{tmp_path}/v.sqlite3",
                              threshold=None, processes=1)
    photo = RecogniseRequest(image=(FACES / "test/obama1.jpg").read_bytes())
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker:
        own = Backend("embedded", broker.host, broker.port, None, f"sqlite://{tmp_path}")
        async with run_vision(own.bus("vision"), settings) as faces:
            assert len((await faces.recognise(photo)).faces) == 1
            workers = multiprocessing.active_children()
            assert workers, "no worker process to kill"
            for worker in workers:
                os.kill(worker.pid or 0, signal.SIGKILL)
            answers: list[str] = []
            async with asyncio.timeout(60):  # new workers load their models first
                while True:
                    try:
                        reply = await faces.recognise(photo)
                        break
                    except ServiceError as exc:
                        answers.append(exc.code)
                        await asyncio.sleep(0.2)
            assert len(reply.faces) == 1
            assert answers and set(answers) == {ErrorCode.UNAVAILABLE}, answers
            assert not set(workers) & set(multiprocessing.active_children())
