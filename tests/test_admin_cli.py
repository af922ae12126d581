"""``mirrorhub admin add NAME``: an admin made from the command line logs in over MQTT, and
closes the open first registration; the audit log says the command line made it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.admins import (
    AUTH_ADMIN_LOGIN,
    AUTH_ADMIN_REGISTER,
    AdminLoginRequest,
    AdminRegisterRequest,
)
from schemas.audit import AUTH_AUDIT, AuditRequest
from schemas.auth import AuthError
from schemas.errors import ServiceError
from services.auth.service import run_auth
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import unique

ROOT = Path(__file__).resolve().parents[1]


def admin_add(data: Path, name: str, stdin: str,
              database: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(MIRRORHUB_DATA_DIR=str(data), MIRRORHUB_ARGON2_MEMORY_KIB="1024")
    if database is not None:
        env["MIRRORHUB_AUTH_DATABASE_URL"] = database
    return subprocess.run([sys.executable, "-m", "mirrorhub.cli", "admin", "add", name],
                          input=stdin, capture_output=True, text=True, env=env, cwd=ROOT,
                          timeout=60, check=False)


async def test_admin_add_reads_the_password_from_stdin(backend: Backend, tmp_path: Path) -> None:
    name = unique("root")
    nowhere = admin_add(tmp_path / "missing", name, "pw\n")
    assert nowhere.returncode == 2 and "start `mirrorhub up` first" in nowhere.stderr
    # The backend's kind of database: a SQLite auth opened in this process beside the
    # session's PostgreSQL one would take its models' connection from it.
    database = (None if backend.db_root.startswith("sqlite")
                else await create_database(backend, "admincli"))
    made = admin_add(tmp_path, name, "s3cret pw\n", database)
    assert made.returncode == 0, made.stderr
    assert made.stdout == f"admin {name} added\n"
    assert (f"data dir {tmp_path}" if database is None else "auth database") in made.stderr
    again = admin_add(tmp_path, name, "other\n", database)
    assert again.returncode == 2
    assert again.stderr.endswith(f"mirrorhub: {name}: admin already exists\n")
    empty = admin_add(tmp_path, unique("root"), "\n", database)
    assert empty.returncode == 2 and "password" in empty.stderr

    own = isolated(backend)
    settings = auth_settings(tmp_path, database or f"sqlite://{tmp_path / 'auth.sqlite3'}",
                             None)
    async with run_auth(own.bus("auth"), settings), Bus(own.bus("bridge"),
                                                         role="bridge") as bus:
        login = await bus.request(AUTH_ADMIN_LOGIN,
                                  AdminLoginRequest(username=name, password="s3cret pw"))
        assert login.username == name
        with pytest.raises(ServiceError) as caught:
            await bus.request(AUTH_ADMIN_REGISTER,
                              AdminRegisterRequest(username=unique(), password="pw"))
        assert caught.value.code == AuthError.ADMIN_REQUIRED
        second = await bus.request(AUTH_ADMIN_REGISTER, AdminRegisterRequest(
            username=unique(), password="pw", token=login.token))
        assert not second.first
        # The audit log says who made whom: the command line the first, this admin the second.
        log = await bus.request(AUTH_AUDIT, AuditRequest(token=login.token))
        said = [(e.action, e.actor, e.source, e.target) for e in log.entries]
        assert said == [("admin.register", name, "api", second.username),
                        ("admin.login", name, "api", name),
                        ("admin.register", None, "command", name)]
    if database is not None:
        await drop_database(database)
