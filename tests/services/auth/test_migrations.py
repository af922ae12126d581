"""The auth migrations on an existing database: accounts made before one user store for every
family (0002) keep their password and gain the optional fields; accounts of 0002 are throttled
and may change their password through their own token after 0003."""

from __future__ import annotations

from pathlib import Path

import pytest
from tortoise.context import TortoiseContext
from tortoise.migrations.executor import MigrationExecutor, MigrationTarget

from broker.client import Bus
from schemas.auth import (
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_UPDATE_USER,
    AUTH_USER,
    AUTH_VERIFY,
    LoginRequest,
    RegisterRequest,
    UpdateUserRequest,
    UserRequest,
    VerifyRequest,
)
from schemas.errors import ServiceError
from services.auth.models import FailedAttempt, User
from services.auth.passwords import PasswordHasher
from services.auth.service import run_auth
from services.database import connection_name, tortoise_config
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated

APP = ("auth", "services.auth.models", "services.auth.migrations")


async def test_accounts_of_0001_log_in_after_0002(backend: Backend, tmp_path: Path) -> None:
    url = await create_database(backend, "migrate")
    try:
        config = tortoise_config(url, *APP)
        password_hash = await PasswordHasher(1024, 1).hash("old-pw")
        async with TortoiseContext() as ctx:
            await ctx.init(config=config)
            client = ctx.db(connection_name(url, "auth"))
            await MigrationExecutor(client, config["apps"]).migrate(
                [MigrationTarget("auth", "0001_initial")])
            # The columns of 0001 only (the model has more by now).
            await client.execute_query(
                "INSERT INTO auth_user (username, email, password_hash, token_version, "
                f"created_at) VALUES ('old-ann', 'ann@example.com', '{password_hash}', 0, "
                "'2024-01-02 03:04:05+00:00')")
        scoped = isolated(backend)
        async with (
            run_auth(scoped.bus("auth"), auth_settings(tmp_path, url, None)),
            Bus(scoped.bus("bridge"), role="bridge") as bus,
        ):
            login = await bus.request(AUTH_LOGIN,
                                      LoginRequest(username="old-ann", password="old-pw"))
            verified = await bus.request(AUTH_VERIFY, VerifyRequest(token=login.token))
            assert (verified.username, verified.fullname) == ("old-ann", None)
            old = await User.get(username="old-ann")
            assert (old.email, old.first_name, old.last_name, old.profile) == (
                "ann@example.com", None, None, None)
            # Email became optional, the new fields exist.
            await bus.request(AUTH_REGISTER, RegisterRequest(
                username="new-bea", password="pw", fullname="Bea Example", first_name="Bea",
                last_name="Example", profile="bea.png"))
            new = await User.get(username="new-bea")
            assert (new.email, new.fullname, new.first_name, new.last_name, new.profile) == (
                None, "Bea Example", "Bea", "Example", "bea.png")
            assert new.id > old.id
    finally:
        await drop_database(url)


async def test_accounts_of_0002_are_throttled_and_changed_after_0003(
    backend: Backend, tmp_path: Path
) -> None:
    url = await create_database(backend, "migrate")
    try:
        config = tortoise_config(url, *APP)
        password_hash = await PasswordHasher(1024, 1).hash("old-pw")
        async with TortoiseContext() as ctx:
            await ctx.init(config=config)
            client = ctx.db(connection_name(url, "auth"))
            await MigrationExecutor(client, config["apps"]).migrate(
                [MigrationTarget("auth", "0002_one_user_store_and_revocation")])
            await client.execute_query(
                "INSERT INTO auth_user (username, password_hash, token_version, created_at, "
                f"first_name) VALUES ('old-cid', '{password_hash}', 0, "
                "'2024-01-02 03:04:05+00:00', 'Cid')")
        scoped = isolated(backend)
        async with (
            run_auth(scoped.bus("auth"), auth_settings(tmp_path, url, None)),
            Bus(scoped.bus("bridge"), role="bridge") as bus,
        ):
            with pytest.raises(ServiceError) as wrong:
                await bus.request(AUTH_LOGIN, LoginRequest(username="old-cid", password="x"))
            assert wrong.value.code == "login_failed"
            [failed] = await FailedAttempt.all()
            assert (failed.action, failed.username, failed.pending) == ("login", "old-cid",
                                                                        False)
            login = await bus.request(AUTH_LOGIN,
                                      LoginRequest(username="old-cid", password="old-pw"))
            assert (await User.get(username="old-cid")).kept_jti is None
            await bus.request(AUTH_UPDATE_USER, UpdateUserRequest(token=login.token,
                                                                  password="new-pw"))
            record = await bus.request(AUTH_USER, UserRequest(token=login.token))
            assert (record.username, record.first_name) == ("old-cid", "Cid")
    finally:
        await drop_database(url)
