"""A PostgreSQL of the test's own: Debian's ``initdb`` and ``postgres`` on a free port in a
temporary directory, so a test may kill it (``kill -9``) and start it again.

::

    with PrivatePostgres() as server:
        url = server.create_database("auth")   # postgres://postgres@127.0.0.1:PORT/auth
        server.kill(); server.start()          # a crash and a restart: same port, same data

Skips the test when the server binaries are not installed. PostgreSQL refuses to run as root,
so under root the server runs as the ``postgres`` user, in a directory of its own under the
system's temporary directory (the test's ``tmp_path`` is root's alone). The server process is
started directly rather than through ``pg_ctl start``, which would detach it from the test: this
way it dies with the test process (``PR_SET_PDEATHSIG``) and its backends follow it (PostgreSQL
ends them when the postmaster dies), so nothing outlives a killed test run. ``fsync`` is off:
a process killed with ``kill -9`` loses nothing the kernel holds, which is the fault tested
here, and the shared machine is spared the syncs.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.support import die_with_parent, free_port, process_tree, running

_SERVER_USER = "postgres"


def _binaries() -> Path | None:
    """The newest installed server's ``bin`` directory, e.g. /usr/lib/postgresql/15/bin."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda path: int(path.parent.parent.name) if
                   path.parent.parent.name.isdigit() else 0)
    return found[-1].parent if found else None


def as_server_user() -> Callable[[], None]:
    """A ``preexec_fn``: become the ``postgres`` user when root, then ask to be killed with
    the parent. In that order: Linux clears the parent-death signal when a process changes its
    user."""
    account = pwd.getpwnam(_SERVER_USER) if os.geteuid() == 0 else None

    def become() -> None:
        if account is not None:
            os.setgroups([])
            os.setgid(account.pw_gid)
            os.setuid(account.pw_uid)
        die_with_parent()

    return become


class PrivatePostgres:
    """One private PostgreSQL (see the module docstring), trust authentication for
    ``postgres`` on 127.0.0.1 only."""

    def __init__(self) -> None:
        binaries = _binaries()
        if binaries is None:
            pytest.skip("PostgreSQL's server is not installed (apt-get install postgresql)")
        self._bin = binaries
        self.port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="mirrorhub-pg-"))
        if os.geteuid() == 0:
            account = pwd.getpwnam(_SERVER_USER)
            os.chown(self.directory, account.pw_uid, account.pw_gid)
        self.data = self.directory / "data"
        self.log = self.directory / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._initialised = False

    def _run(self, *args: str) -> None:
        """A client or set-up program of the server's, as its user, to completion."""
        done = subprocess.run([str(self._bin / args[0]), *args[1:]], capture_output=True,
                              preexec_fn=as_server_user(), check=False,
                              cwd=self.directory, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode()[-2000:]}")

    def start(self, timeout: float = 60.0) -> None:
        """Start the server (made with ``initdb`` on first start) and wait until it accepts
        connections, which after a crash includes its recovery from the write-ahead log."""
        self.spawn()
        deadline = time.monotonic() + timeout
        while not self.accepting():
            if not self.alive or time.monotonic() > deadline:
                raise RuntimeError(f"private PostgreSQL did not start:\n{self.tail()}")
            time.sleep(0.1)

    def spawn(self) -> None:
        """Start the server without waiting for it (async callers poll :meth:`accepting`)."""
        if not self._initialised:
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "-E", "UTF8", "--no-sync", "--no-instructions")
            self._initialised = True
        log = self.log.open("ab")
        self._process = subprocess.Popen(
            [str(self._bin / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-k", str(self.directory), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "max_connections=60", "-c", "shared_buffers=16MB"],
            stdout=log, stderr=log, cwd=self.directory, start_new_session=True,
            preexec_fn=as_server_user(),
        )
        log.close()

    def accepting(self) -> bool:
        ready = subprocess.run([str(self._bin / "pg_isready"), "-q", "-h", "127.0.0.1",
                                "-p", str(self.port), "-t", "1"], check=False)
        return ready.returncode == 0

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """A new, empty database ``name``; its URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", name)
        return self.url(name)

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def kill(self) -> None:
        """``kill -9`` of the postmaster and every backend at once (its process group), as
        when its machine or container goes; the next start recovers from the write-ahead log.
        Returns once all of them are gone, so the next start finds no backend holding its
        shared memory."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        tree = process_tree(process.pid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while any(running(pid) for pid in tree) and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self) -> None:
        """A fast shutdown (SIGINT: sessions are ended, the data is checkpointed)."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process = process
            self.kill()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
