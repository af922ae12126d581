"""The fleet layout as separate OS processes: ``mirrorhub service auth|vision|messaging`` and
``mirrorhub bridge`` against a private Mosquitto and a private PostgreSQL, each process
killable and restartable by the test, which plays their supervisor.

::

    with Fleet(tmp_path) as fleet:          # broker, database server, every role, all up
        await fleet.ready()                 # until the bridge answers for every service
        fleet.roles["vision"].kill()        # kill -9
        fleet.roles["vision"].start()       # the supervisor's restart

Each role runs ``sys.executable -m mirrorhub.cli`` from this checkout, configured as
docs/operations.md says for a fleet: its own broker account in ``MIRRORHUB_BROKER_URL``, its
own database URL, its own data dir, one set of JWT keys for auth. Every process dies with the
test process (``PR_SET_PDEATHSIG``), the vision worker with its service: nothing outlives a
killed test run. Logs go to ``{tmp}/{role}.log``, appended across restarts.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType
from typing import Self

from tests.private_mosquitto import PrivateMosquitto
from tests.private_postgres import PrivatePostgres
from tests.support import die_with_parent, free_port, process_tree

ROOT = Path(__file__).resolve().parents[1]
ROLES = ("auth", "vision", "messaging", "bridge")
SERVICES_WITH_DATABASES = ("auth", "vision", "messaging")
STOP_WITHIN = 20.0  # seconds a role may take to stop on SIGTERM


class Role:
    """One ``mirrorhub`` process of the fleet, started again with the same environment."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log = log
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"---- start {self.starts + 1}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [sys.executable, "-m", "mirrorhub.cli", *self.args], cwd=ROOT, env=self.env,
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, preexec_fn=die_with_parent)
        self.starts += 1

    @property
    def exit_code(self) -> int | None:
        """None while it runs."""
        return None if self._process is None else self._process.poll()

    def kill(self) -> None:
        """``kill -9``: no goodbye, no Will withheld, nothing flushed."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def workers(self) -> list[int]:
        """The pids of its multiprocessing workers (vision's analysis processes), not the
        resource tracker."""
        process = self._process
        if process is None:
            return []
        found = []
        for pid in process_tree(process.pid) - {process.pid}:
            try:
                command = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:  # it ended meanwhile
                continue
            if b"spawn_main" in command:
                found.append(pid)
        return found

    def stop(self) -> int | None:
        """SIGTERM, as a supervisor stops it; its exit code, None when it had to be killed."""
        process = self._process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.terminate()
        try:
            return process.wait(timeout=STOP_WITHIN)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
            return None

    def tail(self, size: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""


class Fleet:
    """A private broker and database server and one process per role (module docstring)."""

    def __init__(self, directory: Path, *, request_timeout: float = 3.0) -> None:
        self.directory = directory
        self.passwords = {role: secrets.token_urlsafe(12) for role in (*ROLES, "operator")}
        self.broker = PrivateMosquitto(
            directory / "mosquitto", passwords=self.passwords,
            # As deploy/mosquitto.conf: the messaging service's persistent session is kept on
            # disk, here saved every second so a kill -9 finds a recent, stale, copy.
            extra=f"persistence true\npersistence_location {directory / 'mosquitto'}/\n"
                  "autosave_interval 1\n")
        self.database = PrivatePostgres()
        self.bridge_port = free_port()
        self.request_timeout = request_timeout
        self.roles: dict[str, Role] = {}
        self._stack = ExitStack()

    @property
    def bridge_url(self) -> str:
        return f"http://127.0.0.1:{self.bridge_port}"

    def _env(self, role: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
        data = self.directory / role
        data.mkdir(exist_ok=True)
        env.update(
            MIRRORHUB_DATA_DIR=str(data),
            MIRRORHUB_BROKER_URL=f"mqtt://{role}:{self.passwords[role]}@127.0.0.1:"
                                 f"{self.broker.port}",
            MIRRORHUB_REQUEST_TIMEOUT=str(self.request_timeout),
        )
        if role in SERVICES_WITH_DATABASES:
            env[f"MIRRORHUB_{role.upper()}_DATABASE_URL"] = self.database.url(role)
        if role == "auth":
            env.update(MIRRORHUB_JWT_KEYS=f"k1:{secrets.token_urlsafe(32)}",
                       MIRRORHUB_ARGON2_MEMORY_KIB="1024", MIRRORHUB_ARGON2_TIME_COST="1",
                       MIRRORHUB_LOGIN_MAX_FAILURES_PER_ADDRESS="1000000")
        if role == "messaging":
            env["MIRRORHUB_MESSAGING_INSTANCE"] = "faults"
        if role == "bridge":
            env["MIRRORHUB_BRIDGE_PORT"] = str(self.bridge_port)
        return env

    def __enter__(self) -> Self:
        try:
            self._stack.enter_context(self.broker)
            self._stack.enter_context(self.database)
            for name in SERVICES_WITH_DATABASES:
                self.database.create_database(name)
            for name in ROLES:
                args = ["bridge"] if name == "bridge" else ["service", name]
                role = Role(name, args, self._env(name), self.directory / f"{name}.log")
                self.roles[name] = role
                self._stack.callback(role.stop)
                role.start()
        except BaseException:
            self._stack.close()
            raise
        return self

    def stop_roles(self) -> dict[str, int | None]:
        """SIGTERM to every role, the bridge first; each one's exit code (None: it hung)."""
        return {name: self.roles[name].stop() for name in reversed(ROLES)}

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stack.close()
