"""``mirrorhub up`` on a data dir with a damaged database: it stops within seconds with one line
naming the file, and leaves every file as it found it."""

from __future__ import annotations

import asyncio
import shutil
import time
from pathlib import Path

import pytest

from tests.databases import damaged_copies, make_pristine
from tests.support import free_port
from tests.test_cli import MIRRORHUB, env_for

# (damaged copy, the service file it replaces)
CASES = [
    ("truncated", "messaging.sqlite3"),
    ("garbage", "auth.sqlite3"),
    ("header", "vision.sqlite3"),
    ("empty", "vision.sqlite3"),
]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pristine(tmp_path_factory.mktemp("pristine"))


@pytest.mark.parametrize(("case", "replaces"), CASES)
async def test_up_stops_with_one_line_naming_the_damaged_file(
    pristine: Path, tmp_path: Path, case: str, replaces: str
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for whole in pristine.glob("*.sqlite3"):
        shutil.copyfile(whole, data / whole.name)
    damaged, _ = damaged_copies(pristine, tmp_path)[case]
    shutil.copyfile(damaged, data / replaces)
    before = {path.name: path.read_bytes() for path in data.glob("*.sqlite3*")}

    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, "up", env=env_for(data, free_port(), free_port()),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    finally:
        if process.returncode is None:  # it hung: the test fails, the process does not stay
            process.kill()
            await process.wait()
    elapsed = time.monotonic() - started

    message = stderr.decode()
    assert process.returncode == 2, message[-2000:]
    last = message.strip().splitlines()[-1]
    assert last.startswith("mirrorhub: ") and str(data / replaces) in last, last
    assert "Traceback" not in message, message[-2000:]
    assert elapsed < 20
    after = {path.name: path.read_bytes() for path in data.glob("*.sqlite3*")}
    assert after == before  # nothing written, nothing new beside them
