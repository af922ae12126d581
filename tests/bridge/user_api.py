"""What the tests of seed 003's files and messages share: accounts with tokens, multipart bodies
written by hand (so that a test controls every byte: part order, NUL in a file name, a body
streamed from a generator), and a whole system of its own for settings the shared one lacks."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bridge.app import create_app
from bridge.server import serving
from services.auth.service import run_auth
from services.messaging.files import Files
from services.messaging.service import run_messaging
from tests.bridge.test_messaging import register
from tests.conftest import (
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
)
from tests.support import free_port


@dataclass(frozen=True)
class Account:
    name: str
    headers: dict[str, str]  # Authorization: Bearer <its token>


async def account(http: httpx.AsyncClient, name: str | None = None) -> Account:
    name = await register(http, name)
    login = await http.post("/login", json={"username": name, "password": "pw-123"})
    return Account(name, {"Authorization": f"Bearer {login.json()['token']}"})


@dataclass(frozen=True)
class Part:
    name: str
    value: bytes
    filename: bytes | None = None  # raw, as it goes into Content-Disposition


def field(name: str, value: str) -> Part:
    return Part(name, value.encode())


def file(filename: str | bytes, data: bytes, name: str = "file") -> Part:
    return Part(name, data, filename.encode() if isinstance(filename, str) else filename)


class Form:
    """A ``multipart/form-data`` body, whole (:attr:`body`) or streamed in pieces."""

    def __init__(self, *parts: Part) -> None:
        self.parts = parts
        self.boundary = uuid.uuid4().hex

    @property
    def headers(self) -> dict[str, str]:
        return {"Content-Type": f"multipart/form-data; boundary={self.boundary}"}

    def _head(self, part: Part) -> bytes:
        disposition = b'form-data; name="' + part.name.encode() + b'"'
        if part.filename is not None:
            disposition += b'; filename="' + part.filename + b'"'
        return (b"--" + self.boundary.encode() + b"\r\nContent-Disposition: " + disposition
                + b"\r\nContent-Type: application/octet-stream\r\n\r\n")

    def _end(self) -> bytes:
        return b"--" + self.boundary.encode() + b"--\r\n"

    @property
    def body(self) -> bytes:
        return b"".join(self._head(p) + p.value + b"\r\n" for p in self.parts) + self._end()

    async def stream(self, big: Path, piece: int = 64 * 1024) -> AsyncIterator[bytes]:
        """The body with the file part's bytes read from ``big`` as it is sent (the parts'
        own values are ignored for it), so the client holds one piece at a time."""
        for part in self.parts:
            yield self._head(part)
            if part.filename is None:
                yield part.value
            else:
                with big.open("rb") as source:
                    while data := source.read(piece):
                        yield data
            yield b"\r\n"
        yield self._end()


async def upload(http: httpx.AsyncClient, who: Account, type_: str | None, filename: str,
                 data: bytes) -> httpx.Response:
    parts = ([field("type", type_)] if type_ is not None else []) + [file(filename, data)]
    form = Form(*parts)
    return await http.post("/api/upload", content=form.body,
                           headers={**who.headers, **form.headers})


async def download(http: httpx.AsyncClient, who: Account, type_: str,
                   name: str) -> httpx.Response:
    return await http.get("/api/download", params={"type": type_, "name": name},
                          headers=who.headers)


@dataclass(frozen=True)
class System:
    url: str
    files: Files | None  # None when the system runs without a messaging service


@contextlib.asynccontextmanager
async def system(backend: Backend, tmp_path: Path, *, messaging: bool = True,
                 request_timeout: float = 5.0, **settings: Any) -> AsyncIterator[System]:
    """Auth, messaging (with ``settings``, or none) and a bridge (waiting ``request_timeout``
    for replies) in a namespace of their own."""
    own = isolated(backend)
    urls = [await create_database(own, "auth"), await create_database(own, "messaging")]
    port = free_port()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                run_auth(own.bus("auth"), auth_settings(tmp_path, urls[0], None)))
            files = None
            if messaging:
                running = await stack.enter_async_context(run_messaging(
                    own.bus("messaging"), messaging_settings(tmp_path, urls[1], **settings)))
                files = running.files
            await stack.enter_async_context(
                serving(create_app(own.bus("bridge", request_timeout=request_timeout)),
                        "127.0.0.1", port))
            yield System(f"http://127.0.0.1:{port}", files)
    finally:
        for url in urls:
            await drop_database(url)
