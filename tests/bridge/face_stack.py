"""A private stack for the face admin API (seed 002): fresh auth and vision databases, auth,
the vision workers (two where the broker shares subscriptions, as on Mosquitto), a bridge and a
client of it, under a topic namespace of their own; the first admin registered over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import httpx
import numpy as np

from bridge.app import create_app
from bridge.server import serving
from services.auth.service import run_auth
from services.vision.config import VisionSettings
from services.vision.faces import Faces
from services.vision.service import run_vision
from tests.bridge.test_messaging_tokens import bearer
from tests.bridge.test_session_api import said
from tests.conftest import (
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
    photo,
)
from tests.support import free_port, unique

ADMIN_PASSWORD = "admin-pw-1"


def blank_png() -> bytes:
    """A photo of nobody."""
    ok, data = cv2.imencode(".png", np.full((120, 160, 3), 180, np.uint8))
    assert ok
    return bytes(data)


@dataclass
class FaceStack:
    http: httpx.AsyncClient
    backend: Backend  # its own namespace
    workers: list[Faces]
    admin: str  # the first admin's name
    token: str  # ... and a token of theirs

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)

    async def everywhere(self, check: Callable[[Faces], bool], within: float = 1.0) -> None:
        """Wait until ``check`` holds on every vision worker."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while not all(check(worker) for worker in self.workers):
            assert loop.time() < deadline, f"not on every worker within {within} s"
            await asyncio.sleep(0.01)

    async def register(self, subject: str, relative: str, name: str | None = None,
                       method: str = "POST") -> httpx.Response:
        fields = {"id": subject} | ({"name": name} if name else {})
        return await self.http.request(method, "/api/face/register", data=fields,
                                       files={"file": (Path(relative).name, photo(relative))},
                                       headers=self.auth)

    async def find(self, relative: str, **fields: str) -> httpx.Response:
        return await self.http.post("/api/face/find", data=fields, headers=self.auth,
                                    files={"file": (Path(relative).name, photo(relative))})


@contextlib.asynccontextmanager
async def face_stack(backend: Backend, data_dir: Path) -> AsyncIterator[FaceStack]:
    own = isolated(backend)
    if own.shared_group is not None:
        own = replace(own, shared_group=unique("vision"))
    auth_url = await create_database(backend, "auth002")
    vision_url = await create_database(backend, "vision002")
    vision = VisionSettings(data_dir=data_dir, database_url=vision_url, threshold=None)
    port = free_port()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                run_auth(own.bus("auth"), auth_settings(data_dir, auth_url, None)))
            workers = [await stack.enter_async_context(run_vision(own.bus("vision"), vision))
                       for _ in range(2 if own.shared_group else 1)]
            await stack.enter_async_context(
                serving(create_app(own.bus("bridge")), "127.0.0.1", port))
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
            admin = unique("admin")
            first = await http.post("/jwt/register",
                                    json={"username": admin, "password": ADMIN_PASSWORD})
            assert said(first) == (201, {"detail": f"admin {admin} registered"})
            login = await http.post("/jwt/login",
                                    json={"username": admin, "password": ADMIN_PASSWORD})
            assert login.status_code == 200, login.text
            yield FaceStack(http, own, workers, admin, login.json()["token"])
    finally:
        for url in (auth_url, vision_url):
            await drop_database(url)
