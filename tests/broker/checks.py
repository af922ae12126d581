"""What every way of reaching a broker must carry, checked the same way for each transport:
HTTP through the bridge to the auth service and back, and a simulated mirror's whole life."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bridge.app import create_app
from bridge.server import serving
from broker.client import Bus, Message
from broker.settings import BusSettings
from devices.frames import FrameFolder
from devices.mirror import Mirror
from schemas.messaging import MIRROR_DISPLAY, MIRROR_STATUS, Display
from schemas.vision import MIRROR_FRAME
from services.auth.service import run_auth
from tests.conftest import auth_settings, photo
from tests.support import free_port, unique


def as_role(settings: BusSettings, role: str, accounts: dict[str, str] | None) -> BusSettings:
    """``settings`` with ``role``'s own account, where the broker keeps client ids to their
    roles (the embedded one does); as they are otherwise."""
    if accounts is None:
        return settings
    return replace(settings, url=settings.url.with_credentials(role, accounts[role]))


async def check_register_and_login(settings: BusSettings, data_dir: Path,
                                   accounts: dict[str, str] | None = None) -> None:
    """A user registers and logs in over HTTP: bridge -> broker -> auth -> broker -> bridge."""
    auth = auth_settings(data_dir, f"sqlite://{data_dir}/auth-{unique('db')}.sqlite3", None)
    port = free_port()
    async with (
        run_auth(as_role(settings, "auth", accounts), auth),
        serving(create_app(as_role(settings, "bridge", accounts)), "127.0.0.1", port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as http,
    ):
        name = unique()
        form = {"username": name, "password": "pw", "email": "tls@example.com"}
        assert (await http.post("/register/user", data=form)).json()["result"] == "success"
        login = (await http.post("/login", data={"username": name, "password": "pw"})).json()
        assert login["result"] == "success" and login["token"]


async def check_mirror(settings: BusSettings, frames: Path) -> None:
    """A mirror says it is online, sends a frame unchanged, is told a display, says goodbye.
    ``frames`` is an empty folder to put the frame in."""
    mirror_id = unique("mirror")
    status, frame = MIRROR_STATUS.format(mirror_id=mirror_id), MIRROR_FRAME.format(
        mirror_id=mirror_id)
    heard: dict[str, asyncio.Queue[Message]] = {status: asyncio.Queue(), frame: asyncio.Queue()}

    async def collect(message: Message) -> None:
        await heard[message.topic].put(message)

    sent = photo("test/obama1.jpg")
    (frames / "obama1.jpg").write_bytes(sent)
    display = Display(mirror_id=mirror_id, state="idle", layout={"time": (1, 1)},
                      at=datetime.now(UTC).replace(microsecond=0))
    async with Bus(settings, role="watcher") as watcher:
        await watcher.subscribe_raw(status, collect)
        await watcher.subscribe_raw(frame, collect)
        async with Mirror(settings, mirror_id, "MX-1") as mirror:
            online = await asyncio.wait_for(heard[status].get(), 10)
            assert online.payload == b"online"
            assert await mirror.stream_frames(FrameFolder.open(frames), 10, loop=False) == 1
            assert (await asyncio.wait_for(heard[frame].get(), 10)).payload == sent
            await watcher.publish(MIRROR_DISPLAY, display, mirror_id=mirror_id)
            assert await mirror.wait_display(lambda shown: shown.state == "idle") == display
        offline = await asyncio.wait_for(heard[status].get(), 10)
        assert offline.payload == b"offline"
        await watcher.publish_raw(status, b"", retain=True)  # leave no retained status behind
