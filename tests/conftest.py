"""Fixtures: a real broker, a real database, the auth service and the bridge on real sockets.

The end-to-end suite runs once per backend: the embedded amqtt broker with SQLite, and Mosquitto
(127.0.0.1:1883) with PostgreSQL (127.0.0.1:5432, database ``test``), the latter skipped with the
reason when either is not running.
"""

from __future__ import annotations

import asyncio
import contextvars
import uuid
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import httpx
import pytest
from aiosmtpd.controller import Controller

from bridge.app import create_app
from bridge.server import serving
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from services.auth.accounts import Accounts
from services.auth.config import AuthSettings
from services.auth.service import run_auth
from services.messaging.config import MessagingSettings
from services.messaging.service import Messaging, run_messaging
from services.vision.config import VisionSettings
from services.vision.faces import Faces
from services.vision.service import run_vision
from services.vision.watch import Mode
from tests.support import (
    MOSQUITTO,
    POSTGRES,
    POSTGRES_ADMIN_DSN,
    MailSink,
    free_port,
    reachable,
)

ACCOUNTS = {"auth": "auth-secret", "bridge": "bridge-secret", "vision": "vision-secret",
            "messaging": "messaging-secret", "test": "test-secret"}
FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"
# The shared photos sit beside the repository (README, Tests). Where they are absent, the tests
# that need them skip, saying where they were looked for, rather than fail.
PHOTOS_ABSENT = not all((FACES / part).is_dir() for part in ("train", "test", "video"))
NO_PHOTOS = f"no photos at {FACES}"
needs_photos = pytest.mark.skipif(PHOTOS_ABSENT, reason=NO_PHOTOS)


def photo(relative: str) -> bytes:
    """The bytes of one shared photo (``test/obama1.jpg``); the test skips where it is absent."""
    path = FACES / relative
    if not path.is_file():
        pytest.skip(f"no photo at {path}")
    return path.read_bytes()


@dataclass(frozen=True)
class Backend:
    """Where the services of one test run meet: a broker and a database server."""

    name: str
    broker_host: str
    broker_port: int
    shared_group: str | None
    db_root: str  # "sqlite://<dir>" or a PostgreSQL DSN without the database name
    # Topic prefix of this test run: on a shared Mosquitto, runs must not hear each other.
    namespace: str = ""

    def bus(self, role: str, **changes: Any) -> BusSettings:
        url = BrokerURL(self.broker_host, self.broker_port, role, ACCOUNTS.get(role, "x"))
        settings = BusSettings(url=url, shared_group=self.shared_group, request_timeout=5.0,
                               connect_timeout=5.0, namespace=self.namespace)
        return replace(settings, **changes)

    def database_url(self, name: str) -> str:
        if self.db_root.startswith("sqlite://"):
            return f"{self.db_root}/{name}.sqlite3"
        return f"{self.db_root}/{name}"


@pytest.fixture(scope="session", params=["embedded+sqlite", "mosquitto+postgres"])
async def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Backend]:
    if request.param == "embedded+sqlite":
        root = tmp_path_factory.mktemp("db")
        async with EmbeddedBroker(port=0, accounts=ACCOUNTS) as broker:
            yield Backend(request.param, broker.host, broker.port, None, f"sqlite://{root}")
        return
    if not reachable(MOSQUITTO):
        pytest.skip(f"Mosquitto is not running on {MOSQUITTO[0]}:{MOSQUITTO[1]}")
    if not reachable(POSTGRES):
        pytest.skip(f"PostgreSQL is not running on {POSTGRES[0]}:{POSTGRES[1]}")
    run = uuid.uuid4().hex[:8]
    yield Backend(request.param, *MOSQUITTO, f"mirrorhub-{run}",
                  f"postgres://postgres@{POSTGRES[0]}:{POSTGRES[1]}", namespace=f"test-{run}/")


def isolated(backend: Backend) -> Backend:
    """The same broker and database server under a topic namespace of its own."""
    return replace(backend, namespace=f"{backend.namespace}{uuid.uuid4().hex[:8]}/")


async def create_database(backend: Backend, name: str) -> str:
    """A fresh, empty database for one service; PostgreSQL ones get a unique name."""
    if backend.db_root.startswith("sqlite://"):
        return backend.database_url(f"{name}-{uuid.uuid4().hex[:8]}")
    db_name = f"mirrorhub_{name}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
    try:
        await admin.execute(f'CREATE DATABASE "{db_name}"')
    finally:
        await admin.close()
    return backend.database_url(db_name)


async def drop_database(url: str) -> None:
    if url.startswith("postgres://"):
        admin = await asyncpg.connect(POSTGRES_ADMIN_DSN)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" '
                                "WITH (FORCE)")
        finally:
            await admin.close()


@pytest.fixture(scope="session")
async def smtp() -> AsyncIterator[MailSink]:
    sink = MailSink(port=free_port())
    controller = Controller(sink, hostname="127.0.0.1", port=sink.port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


def auth_settings(data_dir: Path, database_url: str, smtp_port: int | None) -> AuthSettings:
    """Real settings with a cheap argon2 cost, so hundreds of logins stay fast, and a limit
    of failures per client address that the whole suite, all from 127.0.0.1, stays under (the
    per-username limit is the real one)."""
    return AuthSettings(
        data_dir=data_dir, database_url=database_url, jwt_keys=None, token_ttl=3600,
        reset_ttl=600, smtp_url=f"smtp://127.0.0.1:{smtp_port}" if smtp_port else None,
        mail_from="mirrorhub@test.invalid", argon2_memory_kib=1024, argon2_time_cost=1,
        login_max_failures_per_address=1_000_000,
    )


@pytest.fixture(scope="session")
async def auth_db(backend: Backend) -> AsyncIterator[str]:
    url = await create_database(backend, "auth")
    yield url
    await drop_database(url)


@pytest.fixture(scope="session")
async def auth_service(
    backend: Backend, auth_db: str, smtp: MailSink, tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Accounts]:
    settings = auth_settings(tmp_path_factory.mktemp("auth-data"), auth_db, smtp.port)
    async with run_auth(backend.bus("auth"), settings) as accounts:
        yield accounts


@pytest.fixture(scope="session")
async def vision_service(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Faces]:
    url = await create_database(backend, "vision")
    # Liveness off: these tests show single photos; tests/test_liveness_mirror.py runs the
    # default (a head-turn challenge) end to end.
    settings = VisionSettings(data_dir=tmp_path_factory.mktemp("vision-data"),
                              database_url=url, threshold=None, liveness=Mode.OFF)
    async with run_vision(backend.bus("vision"), settings) as faces:
        yield faces
    await drop_database(url)


def messaging_settings(data_dir: Path, database_url: str, **changes: Any) -> MessagingSettings:
    """Short presence times, so that tests see a mirror go idle within a second or two."""
    settings = MessagingSettings(data_dir=data_dir, database_url=database_url, idle_after=1.5,
                                 hold=0.5, instance=uuid.uuid4().hex[:8])
    return replace(settings, **changes)


@pytest.fixture(scope="session")
async def messaging_service(
    backend: Backend, auth_service: Accounts, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Messaging]:
    url = await create_database(backend, "messaging")
    settings = messaging_settings(tmp_path_factory.mktemp("messaging-data"), url)
    async with run_messaging(backend.bus("messaging"), settings) as messaging:
        _DATABASE_CONTEXTS[id(messaging)] = contextvars.copy_context()
        yield messaging
    await drop_database(url)


# The context (tortoise's current database is a context variable) each session service opened
# its database in. A test calling a service's database directly runs in it: tests inherit the
# context of the fixtures set up last, and a session-long stack of another module's (its own
# auth and vision) may have been set up after this service.
_DATABASE_CONTEXTS: dict[int, contextvars.Context] = {}
T = TypeVar("T")


async def in_database_of(service: object, call: Coroutine[Any, Any, T]) -> T:
    """Await ``call`` with ``service``'s database current (``service`` from a session fixture)."""
    return await asyncio.create_task(call, context=_DATABASE_CONTEXTS[id(service)].copy())


@pytest.fixture(scope="session")
async def bridge_url(
    backend: Backend, auth_service: Accounts, vision_service: Faces, messaging_service: Messaging
) -> AsyncIterator[str]:
    port = free_port()
    async with serving(create_app(backend.bus("bridge")), "127.0.0.1", port):
        yield f"http://127.0.0.1:{port}"


@pytest.fixture
async def http(bridge_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=bridge_url, timeout=15) as client:
        yield client
