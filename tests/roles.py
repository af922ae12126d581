"""One mirrorhub role in a process of its own (``python -m mirrorhub.cli service auth``), on a
test backend's broker, for tests that look at what a process shows from outside: its metrics
port, its log lines."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from broker.client import Bus
from schemas.auth import AUTH_LOGIN
from schemas.errors import RequestTimeout, ServiceError
from tests.conftest import Backend

ROOT = Path(__file__).resolve().parents[1]


def cli_env(backend: Backend, role: str = "test", **extra: str) -> dict[str, str]:
    """The environment of a ``python -m mirrorhub.cli`` process on ``backend``'s broker, as
    ``role``, under its namespace: the test process's own ``MIRRORHUB_*`` left out."""
    settings = backend.bus(role)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(MIRRORHUB_BROKER_URL=settings.url.to_url(),
               MIRRORHUB_TOPIC_NAMESPACE=backend.namespace, **extra)
    if backend.shared_group:
        env["MIRRORHUB_SHARED_GROUP"] = backend.shared_group
    return env


@dataclass
class Role:
    process: asyncio.subprocess.Process
    stderr: list[str] = field(default_factory=list)  # filled once the process has stopped


async def until_auth_answers(bus: Bus, process: asyncio.subprocess.Process) -> None:
    """Wait until the auth service answers a login (with ``login_failed``)."""
    for _ in range(100):
        try:
            await bus.request(AUTH_LOGIN, {"username": "nobody", "password": "x"}, timeout=1)
        except ServiceError as exc:
            assert exc.code == "login_failed"
            return
        except RequestTimeout:
            assert process.returncode is None, "the service exited"
    raise AssertionError("the auth service never answered")


@contextlib.asynccontextmanager
async def auth_process(backend: Backend, data_dir: Path, *args: str,
                       **env: str) -> AsyncIterator[Role]:
    """``mirrorhub [args] service auth`` on ``backend`` (a namespace of its own is wise), with
    ``env`` added; answering requests once entered, stopped with SIGTERM (status 0) on exit."""
    environ = cli_env(backend, "auth", MIRRORHUB_DATA_DIR=str(data_dir),
                      MIRRORHUB_ARGON2_MEMORY_KIB="1024", **env)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mirrorhub.cli", *args, "service", "auth", env=environ, cwd=ROOT,
        stderr=asyncio.subprocess.PIPE)
    role = Role(process)
    try:
        async with Bus(backend.bus("test")) as bus:
            await until_auth_answers(bus, process)
        yield role
    finally:
        if process.returncode is None:
            process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
        role.stderr = stderr.decode().splitlines()
    assert process.returncode == 0, "\n".join(role.stderr[-40:])
