"""The auth service over MQTT: races, expiry, mail failures, the outbox, bad payloads."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.auth import (
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    LoginRequest,
    RegisterRequest,
    ResetConfirmRequest,
    ResetRequest,
)
from schemas.errors import ConfigError, ServiceError
from services.auth.accounts import RESET_HELD, RESET_SENT, Accounts
from services.auth.config import AuthSettings
from services.auth.service import run_auth
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import MailSink, free_port, overhear, unique


@pytest.fixture
async def client(backend: Backend, auth_service: Accounts) -> AsyncIterator[Bus]:
    async with Bus(backend.bus("bridge"), role="bridge") as bus:
        yield bus


def new_user(password: str = "pw") -> RegisterRequest:
    name = unique()
    return RegisterRequest(username=name, password=password, email=f"{name}@example.com")


async def test_concurrent_registrations_of_one_name_create_one_user(client: Bus) -> None:
    user = new_user()
    results = await asyncio.gather(
        *(client.request(AUTH_REGISTER, replace_password(user, f"pw{i}")) for i in range(8)),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, ServiceError)]
    assert len(won) == 1 and len(lost) == 7
    assert {e.code for e in lost} == {"user_exists"}


def replace_password(user: RegisterRequest, password: str) -> RegisterRequest:
    return RegisterRequest(username=user.username, password=password, email=user.email)


async def test_garbage_on_auth_topics_leaves_the_service_answering(client: Bus) -> None:
    for payload in (b"\x00\x01binary", b"{", b"null", b"x" * 300_000):
        await client.publish(AUTH_LOGIN, payload)
    with pytest.raises(ServiceError) as caught:
        await client.request_raw(AUTH_LOGIN, {"username": "a", "password": "x" * 300_000})
    assert caught.value.code == "too_large"
    user = new_user()
    await client.request(AUTH_REGISTER, user)
    reply = await client.request(AUTH_LOGIN, LoginRequest(username=user.username, password="pw"))
    assert reply.username == user.username


async def test_json_nested_thirty_thousand_deep_is_answered(client: Bus) -> None:
    """What a probe sent: every such payload gets a typed reply (or a rejection) and the service
    keeps answering."""
    own = f"reply/{unique('deep')}"
    replies = await overhear(client, own)
    deep = b"[" * 30000 + b"]" * 30000
    await client.publish(AUTH_LOGIN, deep)
    await client.publish(AUTH_LOGIN, b'{"id": "d1", "reply_to": "%s", "body": {"username": '
                                     b'%s}}' % (own.encode(), deep))
    reply = json.loads((await asyncio.wait_for(replies.get(), 5)).payload)
    assert reply == {"id": "d1", "ok": False, "error": reply["error"]}
    assert reply["error"]["code"] == "bad_request"
    user = new_user()
    await client.request(AUTH_REGISTER, user)


@pytest.fixture
async def scratch_auth(
    backend: Backend, tmp_path: Path
) -> AsyncIterator[tuple[Backend, str, Path]]:
    database = await create_database(backend, "scratch")
    # Its own namespace: the session's auth service must not answer for this one.
    yield isolated(backend), database, tmp_path
    await drop_database(database)


async def test_reset_codes_expire(scratch_auth: tuple[Backend, str, Path], smtp: MailSink) -> None:
    backend, database, data = scratch_auth
    settings = replace(auth_settings(data, database, smtp.port), reset_ttl=1)
    async with (
        run_auth(backend.bus("auth"), settings),
        Bus(backend.bus("bridge"), role="bridge") as bus,
    ):
        user = new_user()
        await bus.request(AUTH_REGISTER, user)
        await bus.request(AUTH_RESET, ResetRequest(username=user.username, email=user.email))
        mail = await smtp.wait_for(user.email)
        code = mail.get_content().split("Your reset code: ")[1].split()[0]
        await asyncio.sleep(1.2)
        with pytest.raises(ServiceError) as caught:
            await bus.request(AUTH_RESET_CONFIRM, ResetConfirmRequest(token=code, password="n"))
        assert caught.value.code == "token_invalid"


async def test_mail_server_down_is_unavailable_and_leaves_no_code(
    scratch_auth: tuple[Backend, str, Path],
) -> None:
    backend, database, data = scratch_auth
    settings = auth_settings(data, database, free_port())  # nothing listens there
    async with (
        run_auth(backend.bus("auth"), settings),
        Bus(backend.bus("bridge"), role="bridge") as bus,
    ):
        user = new_user()
        await bus.request(AUTH_REGISTER, user)
        with pytest.raises(ServiceError) as caught:
            await bus.request(AUTH_RESET, ResetRequest(username=user.username, email=user.email))
        assert caught.value.code == "unavailable"


async def test_without_smtp_the_code_goes_to_the_outbox(
    scratch_auth: tuple[Backend, str, Path],
) -> None:
    backend, database, data = scratch_auth
    settings = auth_settings(data, database, None)
    async with (
        run_auth(backend.bus("auth"), settings),
        Bus(backend.bus("bridge"), role="bridge") as bus,
    ):
        user = new_user()
        await bus.request(AUTH_REGISTER, user)
        reply = await bus.request(AUTH_RESET,
                                  ResetRequest(username=user.username, email=user.email))
        [mail] = list((data / "outbox").glob("*.eml"))
        text = mail.read_text()
        code = text.split("Your reset code: ")[1].split()[0]
        assert code not in reply.message
        await bus.request(AUTH_RESET_CONFIRM, ResetConfirmRequest(token=code, password="new"))
        login = await bus.request(AUTH_LOGIN,
                                  LoginRequest(username=user.username, password="new"))
        assert login.username == user.username


async def test_reset_mails_per_hour_is_configurable(
    scratch_auth: tuple[Backend, str, Path], smtp: MailSink, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MIRRORHUB_RESET_MAILS_PER_HOUR", "1")
    assert AuthSettings.from_env(Path("data")).reset_mails_per_hour == 1
    monkeypatch.setenv("MIRRORHUB_RESET_MAILS_PER_HOUR", "0")
    with pytest.raises(ConfigError, match="MIRRORHUB_RESET_MAILS_PER_HOUR"):
        AuthSettings.from_env(Path("data"))
    backend, database, data = scratch_auth
    settings = replace(auth_settings(data, database, smtp.port), reset_mails_per_hour=1)
    async with (
        run_auth(backend.bus("auth"), settings),
        Bus(backend.bus("bridge"), role="bridge") as bus,
    ):
        user, other = new_user(), new_user()
        for each in (user, other):
            await bus.request(AUTH_REGISTER, each)
        ask = ResetRequest(username=user.username, email=user.email)
        assert (await bus.request(AUTH_RESET, ask)).message == RESET_SENT
        assert (await bus.request(AUTH_RESET, ask)).message == RESET_HELD
        # The limit is per account.
        ask_other = ResetRequest(username=other.username, email=other.email)
        assert (await bus.request(AUTH_RESET, ask_other)).message == RESET_SENT
