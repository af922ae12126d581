"""Nothing outlives its process: after SIGTERM, or ``kill -9``, of ``mirrorhub up`` or
``mirrorhub service vision``, its vision worker and multiprocessing's resource tracker are gone
within seconds too."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.support import free_port, process_tree, reachable, running
from tests.test_cli import MIRRORHUB, env_for, wait_for_bridge

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")

GONE_WITHIN = 10.0  # seconds


def command_line(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:100]
    except OSError:
        return "?"


async def stop_and_watch(process: asyncio.subprocess.Process, how: signal.Signals) -> None:
    """Send ``how``; every process of the tree, collected before, must be gone in time."""
    tree = process_tree(process.pid)
    # The process, its vision worker and multiprocessing's resource tracker at least.
    assert len(tree) >= 3, [command_line(pid) for pid in tree]
    process.send_signal(how)
    try:
        async with asyncio.timeout(GONE_WITHIN):
            _, stderr = await process.communicate()  # drains stderr, reaps the process
            while any(running(pid) for pid in tree):
                await asyncio.sleep(0.1)
    except TimeoutError:
        left = [pid for pid in tree if running(pid)]
        described = [command_line(pid) for pid in left]
        for pid in left:  # they are the test's own: it must not leave them either
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"{len(left)} of {len(tree)} processes outlived {how.name}: "
                             f"{described}") from None
    if how is signal.SIGTERM:  # a clean stop, as after Ctrl-C
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert b"Traceback" not in stderr, stderr.decode()[-2000:]


@contextlib.asynccontextmanager
async def started(*args: str, env: dict[str, str]) -> AsyncIterator[asyncio.subprocess.Process]:
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, *args, env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.kill()
            await process.communicate()


async def wait_for_line(process: asyncio.subprocess.Process, words: bytes) -> None:
    assert process.stderr is not None
    async with asyncio.timeout(60):
        while words not in await process.stderr.readline():
            assert process.returncode is None, "the service exited early"


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_up_leaves_no_process_behind(tmp_path: Path, how: signal.Signals) -> None:
    bridge_port = free_port()
    async with started("up", env=env_for(tmp_path, free_port(), bridge_port)) as process:
        await wait_for_bridge(process, bridge_port)
        await stop_and_watch(process, how)


@pytest.mark.parametrize("how", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
async def test_the_vision_service_leaves_no_process_behind(
    tmp_path: Path, how: signal.Signals
) -> None:
    broker_port = free_port()
    env = env_for(tmp_path, broker_port, free_port())
    async with started("broker", env=env) as broker:
        async with asyncio.timeout(30):
            while not reachable(("127.0.0.1", broker_port)):
                assert broker.returncode is None, "the broker exited early"
                await asyncio.sleep(0.05)
        async with started("service", "vision", env=env) as vision:
            await wait_for_line(vision, b"embeddings of")
            await stop_and_watch(vision, how)
        broker.send_signal(signal.SIGINT)
        await asyncio.wait_for(broker.communicate(), 15)
