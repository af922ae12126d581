"""A steady burst of traffic through the bridge's HTTP API, with a ledger of what the system
acknowledged: messages (``/send_message``) and face enrolments (``/register/face``).

A send that fails for a reason a fault explains (no connection, a 5xx) is sent again with the
same ``Idempotency-Key`` until it succeeds, as docs/http-api.md tells clients to; so a message
stored twice can only be the system's doing. An enrolment is never retried (it has no
idempotency key: a retry after a lost reply would enrol the photo twice, by design): each one
enrols a new name, and only those acknowledged with success must be found later.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

# Statuses a fault explains: a service or its dependency is away (503), or did not answer in
# time (504). A 500 is a failure no fault excuses: it stops the burst.
TRANSIENT = {503, 504}
GIVE_UP_AFTER = 120.0  # seconds one send may keep failing before the burst stops retrying it


class Unexpected(AssertionError):
    """An answer no fault explains (a 4xx, a domain error): the burst stops on it."""


@dataclass
class Ledger:
    """What the burst sent and what the system acknowledged."""

    sent: dict[str, tuple[str, str]] = field(default_factory=dict)  # key -> (receiver, content)
    unresolved: list[str] = field(default_factory=list)  # keys that never got a success
    retried: int = 0  # sends that needed more than one attempt
    enrolled: dict[str, str] = field(default_factory=dict)  # name -> the photo's file name
    enrol_failed: list[str] = field(default_factory=list)
    failures: Counter[str] = field(default_factory=Counter)  # why attempts failed
    successes: list[tuple[float, str]] = field(default_factory=list)  # (monotonic, kind)

    def succeeded(self, kind: str) -> None:
        self.successes.append((time.monotonic(), kind))

    def successes_since(self, moment: float, kind: str) -> int:
        return sum(1 for at, what in self.successes if at >= moment and what == kind)


def _reason(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return f"{response.status_code} (not JSON)"
    message = body.get("message") if isinstance(body, dict) else None
    return f"{response.status_code} {str(message)[:60]}"


def _succeeded(response: httpx.Response) -> bool:
    try:
        body: Any = response.json()
    except ValueError:
        return False
    return response.status_code == 200 and isinstance(body, dict) and \
        body.get("result") == "success"


class Burst:
    """``senders`` tasks sending messages between ``users`` and one enrolling ``photos``, each
    with a short pause between requests, until :meth:`stop`."""

    def __init__(self, http: httpx.AsyncClient, users: list[str], photos: list[Path], *,
                 senders: int = 2, pause: float = 0.05) -> None:
        self.http = http
        self.users = users
        self.photos = [(path.name, path.read_bytes()) for path in photos]
        self.senders = senders
        self.pause = pause
        self.ledger = Ledger()
        self._run = uuid.uuid4().hex[:6]
        self._stopping = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._sender(n)) for n in range(self.senders)]
        self._tasks.append(asyncio.create_task(self._enroller()))

    async def stop(self) -> None:
        """Stop starting requests; sends being retried go on until they succeed (or give up)."""
        self._stopping.set()
        await asyncio.gather(*self._tasks)

    def check(self) -> None:
        """Raise what stopped a task of the burst early."""
        for task in self._tasks:
            if task.done() and task.exception() is not None:
                raise task.exception()  # type: ignore[misc]

    async def _sender(self, number: int) -> None:
        for count in itertools.count():
            if self._stopping.is_set():
                return
            sender = self.users[count % len(self.users)]
            receiver = self.users[(count + 1 + number) % len(self.users)]
            key = f"{self._run}-{number}-{count}"
            await self._send(key, sender, receiver, f"burst {key}")
            await asyncio.sleep(self.pause)

    async def _send(self, key: str, sender: str, receiver: str, content: str) -> None:
        form = {"sender_username": sender, "receiver_username": receiver, "content": content}
        given_up = time.monotonic() + GIVE_UP_AFTER
        for attempt in itertools.count():
            if attempt == 1:
                self.ledger.retried += 1
            try:
                response = await self.http.post("/send_message", data=form,
                                                headers={"Idempotency-Key": key})
            except httpx.TransportError as exc:
                self.ledger.failures[f"send: {type(exc).__name__}"] += 1
            else:
                if _succeeded(response):
                    self.ledger.sent[key] = (receiver, content)
                    self.ledger.succeeded("send")
                    return
                if response.status_code not in TRANSIENT:
                    raise Unexpected(f"send {key}: {response.status_code} {response.text}")
                self.ledger.failures[f"send: {_reason(response)}"] += 1
            if time.monotonic() > given_up:
                self.ledger.unresolved.append(key)
                return
            await asyncio.sleep(0.2)

    async def _enroller(self) -> None:
        for count in itertools.count():
            if self._stopping.is_set():
                return
            name = f"face-{self._run}-{count}"
            photo = self.photos[count % len(self.photos)]
            try:
                response = await self.http.post("/register/face", data={"displayname": name},
                                                files={"face_image": photo})
            except httpx.TransportError as exc:
                self.ledger.failures[f"enrol: {type(exc).__name__}"] += 1
            else:
                if _succeeded(response):
                    self.ledger.enrolled[name] = photo[0]
                    self.ledger.succeeded("enrol")
                    await asyncio.sleep(self.pause)
                    continue
                if response.status_code not in TRANSIENT:
                    raise Unexpected(f"enrol {name} ({photo[0]}): {response.status_code} "
                                     f"{response.text}")
                self.ledger.failures[f"enrol: {_reason(response)}"] += 1
            self.ledger.enrol_failed.append(name)
            await asyncio.sleep(0.2)
