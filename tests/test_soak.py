"""The soak's short version (bench/soak.py): 10 mirrors for 30 s on ``mirrorhub up`` in a child
process. Memory flat over the last half, every message shown to its receiver, every display
right; ``make soak`` is the same for 100 mirrors and 10 minutes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from tests.conftest import needs_photos

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.timeout(600)
@needs_photos
async def test_a_short_soak_passes() -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.soak", "--mirrors", "10", "--minutes", "0.5",
        "--message-every", "2", cwd=ROOT, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), 300)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    report = stdout.decode()
    assert process.returncode == 0, report + stderr.decode()[-2000:]
    lines = report.splitlines()
    assert lines[-1] == "PASS"
    assert lines[1].startswith("fleet: 10 mirrors (online in ") and ", 3 people, " in lines[1]
    assert "0 wrong, 0 missing" in report and "0 lost, 0 on another person's display" in report
    sent = next(line for line in lines if line.startswith("messages: "))
    assert int(sent.split()[1]) >= 5  # one every 2 s for the first 22 s
    assert "| mirrorhub up | " in report and "| fleet (this process) | " in report
