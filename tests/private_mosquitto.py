"""A Mosquitto of the test's own: Debian's ``mosquitto -c`` with a generated config on free
ports, so a test may configure it (TLS, passwords, ACLs), kill it and start it again.

::

    with PrivateMosquitto(tmp_path, tls=pki, passwords={"auth": "pw"}, acl=ACL_TEXT) as broker:
        broker.port, broker.tls_port       # plain and TLS listeners on 127.0.0.1
        broker.kill(); broker.start()      # a crash and a restart, same ports and config

    PrivateMosquitto(tmp_path, config=TEXT)  # a whole config; {port}, {tls_port} filled in

Skips the test when ``mosquitto`` is not installed. Debian's build has no WebSockets, so there
is no WebSockets listener here (the embedded broker has one). The process dies with the test
process (``PR_SET_PDEATHSIG``), so nothing outlives a killed test run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

import pytest

from tests.certs import Pki
from tests.support import die_with_parent, free_port, reachable

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

class PrivateMosquitto:
    """One private Mosquitto (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        tls: Pki | None = None,
        require_certificate: bool = False,
        passwords: dict[str, str] | None = None,
        acl: str | None = None,
        extra: str = "",
        config: str | None = None,
    ) -> None:
        if not Path(MOSQUITTO).exists():
            pytest.skip("Debian's mosquitto is not installed (apt-get install mosquitto)")
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.tls_port = free_port() if tls is not None else None
        self.log = directory / "mosquitto.log"
        lines = ["per_listener_settings false", "persistence false",
                 "log_dest stderr", "log_type all", "set_tcp_nodelay true",
                 f"listener {self.port} 127.0.0.1"]
        if tls is not None:
            lines += [f"listener {self.tls_port} 127.0.0.1", f"cafile {tls.ca}",
                      f"certfile {tls.server_cert}", f"keyfile {tls.server_key}",
                      f"require_certificate {'true' if require_certificate else 'false'}"]
        if passwords is not None:
            password_file = directory / "passwords"
            password_file.write_text("")
            for user, password in passwords.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), user, password],
                               check=True, capture_output=True)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        if acl is not None:
            acl_file = directory / "acl"
            acl_file.write_text(acl)
            lines.append(f"acl_file {acl_file}")
        self.config = directory / "mosquitto.conf"
        # Started as root, Mosquitto reads password and ACL files as the mosquitto user, who
        # may not enter the test's temporary directory: it stays root here.
        user = "user root\n" if os.geteuid() == 0 else ""
        if config is not None:
            # A whole config of the caller's instead: {port} and {tls_port} are filled in.
            self.tls_port = self.tls_port or free_port()
            config = config.replace("{port}", str(self.port))
            self.config.write_text(user + config.replace("{tls_port}", str(self.tls_port)))
        else:
            self.config.write_text(user + "\n".join(lines) + "\n" + extra)
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 10.0) -> None:
        log = self.log.open("ab")
        self._process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)], stdout=log,
                                         stderr=log, preexec_fn=die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while not reachable(("127.0.0.1", self.port)):
            if self._process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"private mosquitto did not start:\n{self.log.read_text()}")
            time.sleep(0.05)

    def kill(self) -> None:
        """``kill -9``: no goodbye to any client."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait(timeout=10)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
