"""Which tokens hold, over MQTT: logout revokes one token, a password reset and a deleted
account revoke them all, revoked rows go when their token would have expired."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_LOGIN,
    AUTH_LOGOUT,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AUTH_USER_DELETED,
    AUTH_VERIFY,
    DeleteUserRequest,
    LoginRequest,
    LogoutRequest,
    RegisterRequest,
    ResetConfirmRequest,
    ResetRequest,
    VerifyRequest,
)
from schemas.errors import ServiceError
from services.auth.accounts import Accounts
from services.auth.models import RevokedToken
from services.auth.service import run_auth
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import MailSink, overhear, unique


@pytest.fixture
async def client(backend: Backend, auth_service: Accounts) -> AsyncIterator[Bus]:
    async with Bus(backend.bus("bridge"), role="bridge") as bus:
        yield bus


async def account(bus: Bus, **fields: str) -> tuple[str, str]:
    """A new user's name and a token of theirs."""
    name = unique()
    await bus.request(AUTH_REGISTER, RegisterRequest(username=name, password="pw", **fields))
    return name, await token_of(bus, name)


async def token_of(bus: Bus, name: str, password: str = "pw") -> str:
    return (await bus.request(AUTH_LOGIN, LoginRequest(username=name, password=password))).token


async def refused(bus: Bus, token: str) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await bus.request(AUTH_VERIFY, VerifyRequest(token=token))
    return caught.value


async def test_logout_revokes_that_token_only(client: Bus) -> None:
    name, token = await account(client)
    other = await token_of(client, name)
    assert (await client.request(AUTH_LOGOUT, LogoutRequest(token=token))).username == name
    error = await refused(client, token)
    assert (error.code, error.message) == ("token_invalid", "token was revoked")
    assert (await client.request(AUTH_VERIFY, VerifyRequest(token=other))).username == name
    with pytest.raises(ServiceError) as twice:
        await client.request(AUTH_LOGOUT, LogoutRequest(token=token))
    assert twice.value.code == "token_invalid"


async def test_concurrent_logouts_of_one_token_all_succeed_or_find_it_revoked(
    client: Bus,
) -> None:
    _, token = await account(client)
    results = await asyncio.gather(
        *(client.request(AUTH_LOGOUT, LogoutRequest(token=token)) for _ in range(6)),
        return_exceptions=True,
    )
    assert all(not isinstance(r, BaseException) or isinstance(r, ServiceError) for r in results)
    assert {r.code for r in results if isinstance(r, ServiceError)} <= {"token_invalid"}
    assert any(not isinstance(r, BaseException) for r in results)
    assert (await refused(client, token)).code == "token_invalid"


async def test_verify_carries_the_fullname(client: Bus) -> None:
    name, token = await account(client, fullname="  Ann Example ")
    reply = await client.request(AUTH_VERIFY, VerifyRequest(token=token))
    assert (reply.username, reply.fullname) == (name, "Ann Example")
    _, plain = await account(client, email="p@example.com")
    assert (await client.request(AUTH_VERIFY, VerifyRequest(token=plain))).fullname is None


async def test_a_password_reset_revokes_the_older_tokens(
    client: Bus, smtp: MailSink
) -> None:
    address = f"{unique('mail')}@example.com"
    name, old = await account(client, email=address)
    await client.request(AUTH_RESET, ResetRequest(username=name, email=address))
    mail = await smtp.wait_for(address)
    code = mail.get_content().split("Your reset code: ")[1].split()[0]
    await client.request(AUTH_RESET_CONFIRM, ResetConfirmRequest(token=code, password="new"))
    assert (await refused(client, old)).message == "token was revoked"
    fresh = await token_of(client, name, "new")
    assert (await client.request(AUTH_VERIFY, VerifyRequest(token=fresh))).username == name


async def test_an_account_without_email_cannot_ask_for_a_reset(client: Bus) -> None:
    name, _ = await account(client, fullname="No Mail")
    with pytest.raises(ServiceError) as caught:
        await client.request(AUTH_RESET, ResetRequest(username=name, email="x@example.com"))
    assert (caught.value.code, caught.value.message) == ("user_not_found", "Not Found User")


async def test_deleting_an_account_revokes_every_token_and_is_announced(client: Bus) -> None:
    name, token = await account(client)
    other = await token_of(client, name)
    heard = await overhear(client, AUTH_USER_DELETED.filter)
    assert (await client.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))).username == name
    event = await asyncio.wait_for(heard.get(), 5)
    body = json.loads(event.payload)
    assert body["username"] == name and isinstance(body["user_id"], int)
    for each in (token, other):
        assert (await refused(client, each)).code == "token_invalid"
    with pytest.raises(ServiceError) as again:
        await client.request(AUTH_DELETE_USER, DeleteUserRequest(token=other))
    assert again.value.code == "user_not_found"
    with pytest.raises(ServiceError) as login:
        await client.request(AUTH_LOGIN, LoginRequest(username=name, password="pw"))
    assert login.value.code == "login_failed"
    # The name is free again; the old tokens do not pass for the new account.
    await client.request(AUTH_REGISTER, RegisterRequest(username=name, password="pw2"))
    assert (await refused(client, token)).code == "token_invalid"
    assert (await client.request(AUTH_VERIFY,
                                 VerifyRequest(token=await token_of(client, name, "pw2")))
            ).username == name


async def test_revoked_rows_are_purged_once_their_token_expired(
    backend: Backend, tmp_path: Path
) -> None:
    database = await create_database(backend, "revoked")
    try:
        settings = replace(auth_settings(tmp_path, database, None), token_ttl=2)
        scoped = isolated(backend)
        async with (
            run_auth(scoped.bus("auth"), settings),
            Bus(scoped.bus("bridge"), role="bridge") as bus,
        ):
            # This task entered the service's database context: the test reads its table.
            _, first = await account(bus)
            await bus.request(AUTH_LOGOUT, LogoutRequest(token=first))
            [row] = await RevokedToken.all()
            assert row.expires_at <= datetime.now(UTC) + timedelta(seconds=2)
            await asyncio.sleep(3.1)  # ``exp`` is in whole seconds
            _, second = await account(bus)
            await bus.request(AUTH_LOGOUT, LogoutRequest(token=second))
            [left] = await RevokedToken.all()
            assert left.jti != row.jti
    finally:
        await drop_database(database)
