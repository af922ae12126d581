"""Each service's SQLite database, whole and damaged in the ways a black-box probe found."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from services.database import open_database

APPS = {
    "auth": ("services.auth.models", "services.auth.migrations"),
    "vision": ("services.vision.models", "services.vision.migrations"),
    "messaging": ("services.messaging.models", "services.messaging.migrations"),
}


async def open_and_close(path: Path, app: str) -> None:
    async with asyncio.timeout(10), open_database(f"sqlite://{path}", app, *APPS[app]):
        pass


def make_pristine(folder: Path) -> Path:
    """Each service's database in ``folder``, created and migrated, closed (no -wal left).
    For sync fixtures: it runs its own event loop."""

    async def create() -> None:
        for app in APPS:
            await open_and_close(folder / f"{app}.sqlite3", app)

    asyncio.run(create())
    return folder


def damaged_copies(pristine: Path, target: Path) -> dict[str, tuple[Path, str]]:
    """Copies of the pristine databases, each damaged one way: name -> (path, app)."""
    cases: dict[str, tuple[Path, str]] = {}

    def copy(name: str, app: str) -> Path:
        path = target / f"{name}.sqlite3"
        shutil.copyfile(pristine / f"{app}.sqlite3", path)
        cases[name] = (path, app)
        return path

    with copy("truncated", "messaging").open("r+b") as handle:
        handle.truncate(1000)
    garbage = copy("garbage", "auth")
    garbage.write_bytes(bytes(range(256)) * (garbage.stat().st_size // 256))
    header = copy("header", "vision")
    data = bytearray(header.read_bytes())
    data[16:18] = b"\x00\x03"  # page size 3
    header.write_bytes(bytes(data))
    page_one = copy("page_one", "messaging")
    data = bytearray(page_one.read_bytes())
    data[100:4096] = b"\xab" * 3996  # the schema page, header intact
    page_one.write_bytes(bytes(data))
    copy("empty", "vision").write_bytes(b"")
    return cases
