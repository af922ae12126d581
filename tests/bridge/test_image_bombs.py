"""An image bomb sent to ``/face`` does not hold up anybody else's ``/face``: bridge, MQTT and
the vision service with its one worker process, as ``mirrorhub up`` runs them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from bridge.app import create_app
from bridge.server import serving
from services.vision.config import VisionSettings
from services.vision.service import run_vision
from tests.conftest import FACES, Backend, create_database, drop_database, isolated, needs_photos
from tests.services.vision.support import inflate_bomb
from tests.support import free_port

pytestmark = needs_photos


@pytest.fixture
async def one_worker_bridge(backend: Backend, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    own = isolated(backend)
    url = await create_database(own, "vision")
    settings = VisionSettings(data_dir=tmp_path, database_url=url, threshold=None, processes=1)
    port = free_port()
    try:
        async with (
            run_vision(own.bus("vision", request_timeout=30.0), settings),
            serving(create_app(own.bus("bridge", request_timeout=30.0)), "127.0.0.1", port),
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http,
        ):
            yield http
    finally:
        await drop_database(url)


async def timed_face(
    http: httpx.AsyncClient, name: str, data: bytes
) -> tuple[float, dict[str, Any]]:
    started = time.perf_counter()
    reply = await http.post("/face", files={"face_image": (name, data, "image/png")})
    return time.perf_counter() - started, reply.json() | {"status": reply.status_code}


async def test_a_png_bomb_is_refused_without_delaying_a_real_photo(
    one_worker_bridge: httpx.AsyncClient,
) -> None:
    http = one_worker_bridge
    photo = (FACES / "test/obama1.jpg").read_bytes()
    # 100x100 pixels declared, 1 GB of zeros in its zlib stream: ~1 MB on the wire, and some
    # seconds of OpenCV's time.
    bomb = inflate_bomb(100, 100, 1024)
    alone, answer = await timed_face(http, "obama1.jpg", photo)
    assert answer["result"] == "success", answer

    attack = asyncio.create_task(timed_face(http, "bomb.png", bomb))
    await asyncio.sleep(0.1)  # the bomb reaches the worker first
    beside, answer = await timed_face(http, "obama1.jpg", photo)
    _, refused = await attack

    assert answer["result"] == "success", answer
    assert beside < alone + 1.0, f"a real photo took {beside:.2f} s beside the bomb ({alone:.2f})"
    assert refused["status"] == 200
    assert (refused["result"], refused["type"]) == ("fail", "save_image"), refused
    assert "more than 100x100 pixels" in refused["message"]
