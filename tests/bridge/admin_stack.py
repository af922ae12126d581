"""A private stack for the admin page: auth, vision, messaging and a bridge on fresh databases
under a topic namespace of their own, the first admin registered; its HTTP client logged in
to nothing yet. The browser test uses it too."""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from bridge.app import create_app
from bridge.fleet import FleetView
from bridge.server import serving
from services.auth.service import run_auth
from services.messaging.service import run_messaging
from services.vision.config import VisionSettings
from services.vision.service import run_vision
from tests.bridge.test_messaging_tokens import bearer
from tests.conftest import (
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
)
from tests.support import free_port, unique

ADMIN_PASSWORD = "admin-pw-1"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_in(html: str) -> str:
    """The CSRF token of the (first) form of a page."""
    match = _CSRF.search(html)
    assert match, "the page has no form with a CSRF token"
    return match.group(1)


@dataclass
class AdminStack:
    url: str
    http: httpx.AsyncClient
    backend: Backend  # its own namespace
    fleet: FleetView
    admin: str
    token: str  # an admin token from /jwt/login, for the face admin API
    vision: VisionSettings  # its vision service's

    def client(self) -> httpx.AsyncClient:
        """A new browser, as it were: its own cookies."""
        return httpx.AsyncClient(base_url=self.url, timeout=30)

    @property
    def auth(self) -> dict[str, str]:
        return bearer(self.token)

    async def log_in(self, client: httpx.AsyncClient | None = None) -> str:
        """Log ``client`` (the stack's own by default) in through the form; the CSRF token of
        the page it lands on."""
        client = client or self.http
        form = await client.get("/admin/login")
        landed = await client.post("/admin/login", data={
            "csrf": csrf_in(form.text), "username": self.admin, "password": ADMIN_PASSWORD},
            follow_redirects=True)
        assert landed.status_code == 200 and str(landed.url).endswith("/admin"), landed.text
        return csrf_in(landed.text)


@contextlib.asynccontextmanager
async def admin_stack(backend: Backend, data_dir: Path,
                      keep_face_crops: bool = False) -> AsyncIterator[AdminStack]:
    own = isolated(backend)
    urls = [await create_database(backend, name) for name in ("auth13", "vision13", "msg13")]
    vision = VisionSettings(data_dir=data_dir, database_url=urls[1], threshold=None,
                            processes=0, keep_face_crops=keep_face_crops)
    port = free_port()
    app = create_app(own.bus("bridge"))
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                run_auth(own.bus("auth"), auth_settings(data_dir, urls[0], None)))
            await stack.enter_async_context(run_vision(own.bus("vision"), vision))
            await stack.enter_async_context(
                run_messaging(own.bus("messaging"), messaging_settings(data_dir, urls[2])))
            await stack.enter_async_context(serving(app, "127.0.0.1", port))
            url = f"http://127.0.0.1:{port}"
            http = await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=30))
            admin = unique("admin")
            first = await http.post("/jwt/register",
                                    json={"username": admin, "password": ADMIN_PASSWORD})
            assert first.status_code == 201, first.text
            login = await http.post("/jwt/login",
                                    json={"username": admin, "password": ADMIN_PASSWORD})
            assert login.status_code == 200, login.text
            yield AdminStack(url, http, own, app.state.fleet, admin, login.json()["token"],
                             vision)
    finally:
        for url in urls:
            await drop_database(url)
