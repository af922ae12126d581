"""Helpers the tests share: free ports, reachability, unique names, an SMTP sink."""

from __future__ import annotations

import asyncio
import ctypes
import os
import random
import signal
import socket
import uuid
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from broker.client import Bus, Message


def _address(variable: str, default: int) -> tuple[str, int]:
    # MIRRORHUB_TEST_MOSQUITTO=127.0.0.1:1 shows what the suite does where a server is absent.
    host, _, port = (os.environ.get(variable) or f"127.0.0.1:{default}").rpartition(":")
    return host, int(port)


MOSQUITTO = _address("MIRRORHUB_TEST_MOSQUITTO", 1883)
POSTGRES = _address("MIRRORHUB_TEST_POSTGRES", 5432)
POSTGRES_ADMIN_DSN = f"postgresql://postgres@{POSTGRES[0]}:{POSTGRES[1]}/test"


_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """A ``preexec_fn``: the child is killed (SIGKILL) when the test process ends, however it
    ends, ``kill -9`` included. Linux ties this to the thread that started the child, so start
    children from the main thread (the event loop's), never from a worker thread."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


# Ports a listener started later may take. Below Linux's ephemeral range (32768-60999): a port
# the kernel hands out for bind(0) is one it also hands to outgoing connections, and with this
# many clients connecting, one of those took a bridge's port between picking and binding it.
_LISTEN_PORTS = (20000, 32767)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing is bound to now, outside the ephemeral range."""
    for _ in range(200):
        port = random.randint(*_LISTEN_PORTS)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {_LISTEN_PORTS}")


def reachable(address: tuple[str, int]) -> bool:
    try:
        with socket.create_connection(address, timeout=1):
            return True
    except OSError:
        return False


def unique(prefix: str = "user") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class MailSink:
    """An aiosmtpd handler that keeps every message it is sent."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[EmailMessage] = []
        self._arrived = asyncio.Event()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = BytesParser(policy=default_policy).parsebytes(envelope.content)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self._arrived.set()
        return "250 OK"

    async def wait_for(self, recipient: str, timeout: float = 5.0) -> EmailMessage:
        async with asyncio.timeout(timeout):
            while True:
                for message in self.messages:
                    if message["To"] == recipient:
                        return message
                self._arrived.clear()
                await self._arrived.wait()


async def overhear(bus: Bus, topic_filter: str) -> asyncio.Queue[Message]:
    """Every message on ``topic_filter`` from now on, queued; the subscription is in place
    when this returns."""
    heard: asyncio.Queue[Message] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await heard.put(message)

    await bus.subscribe_raw(topic_filter, collect, qos=0)
    await asyncio.sleep(0.2)  # let the subscription land before anyone publishes
    return heard


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it, read from ``/proc`` (Linux)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # it ended meanwhile
            continue
        parent = int(text.rsplit(")", 1)[1].split()[1])  # the name in (...) may hold spaces
        children.setdefault(parent, []).append(int(stat.parent.name))
    tree, pending = set(), [root]
    while pending:
        pid = pending.pop()
        tree.add(pid)
        pending.extend(children.get(pid, []))
    return tree


def running(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie, ended but not yet reaped, does not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")
