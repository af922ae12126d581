"""An account's record over MQTT (svc/auth/user, svc/auth/update_user): what a token's holder
may read and change, which tokens a new password leaves working, renames and their event."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pydantic import BaseModel

from broker.access import Access, mirror_may
from broker.client import Bus
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AUTH_UPDATE_USER,
    AUTH_USER,
    AUTH_USER_RENAMED,
    AUTH_VERIFY,
    DeleteUserRequest,
    LoginRequest,
    RegisterRequest,
    ResetConfirmRequest,
    ResetRequest,
    UpdateUserRequest,
    UserRecord,
    UserRequest,
    VerifyRequest,
)
from schemas.errors import ServiceError
from schemas.topics import Operation
from services.auth.accounts import Accounts
from tests.conftest import Backend
from tests.support import MailSink, overhear, unique


@pytest.fixture
async def client(backend: Backend, auth_service: Accounts) -> AsyncIterator[Bus]:
    async with Bus(backend.bus("bridge"), role="bridge") as bus:
        yield bus


async def account(bus: Bus, **fields: str) -> tuple[str, str]:
    name = unique()
    await bus.request(AUTH_REGISTER, RegisterRequest(
        username=name, password="pw", email=f"{name}@example.com", first_name="Ann",
        last_name="Example", **fields))
    return name, await token_of(bus, name)


async def token_of(bus: Bus, name: str, password: str = "pw") -> str:
    return (await bus.request(AUTH_LOGIN, LoginRequest(username=name, password=password))).token


async def me(bus: Bus, token: str, id_: int | None = None) -> UserRecord:
    return await bus.request(AUTH_USER, UserRequest(token=token, id=id_))


async def failure(bus: Bus, operation: Operation[Any, Any], request: BaseModel) -> ServiceError:
    with pytest.raises(ServiceError) as caught:
        await bus.request(operation, request)
    return caught.value


async def test_own_record_in_full_anothers_public_part(client: Bus) -> None:
    ann, ann_token = await account(client, profile="ann.png")
    bob, bob_token = await account(client, profile="bob.png")
    mine = await me(client, ann_token)
    assert (mine.username, mine.first_name, mine.last_name, mine.profile) == (
        ann, "Ann", "Example", "ann.png")
    assert await me(client, ann_token, mine.id) == mine
    bob_id = (await me(client, bob_token)).id
    assert await me(client, ann_token, bob_id) == UserRecord(
        id=bob_id, username=bob, first_name=None, last_name=None, profile="bob.png")
    nobody = await failure(client, AUTH_USER, UserRequest(token=ann_token, id=2**31 - 1))
    assert (nobody.code, nobody.field) == ("user_not_found", "id")
    forged = await failure(client, AUTH_USER, UserRequest(token=ann_token + "x"))
    assert (forged.code, forged.reason) == ("token_invalid", "signature")


async def test_only_the_fields_given_change(client: Bus) -> None:
    name, token = await account(client)
    reply = await client.request(AUTH_UPDATE_USER, UpdateUserRequest(
        token=token, last_name="Other", first_name="Ann"))
    assert (reply.username, reply.changed) == (name, ["last_name"])
    mine = await me(client, token)
    assert (mine.first_name, mine.last_name, mine.profile) == ("Ann", "Other", None)
    nothing = await client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=token))
    assert nothing.changed == []


async def test_a_new_password_leaves_the_token_that_set_it(client: Bus, smtp: MailSink) -> None:
    name, first = await account(client)
    second = await token_of(client, name)
    await client.request(AUTH_RESET, ResetRequest(username=name, email=f"{name}@example.com"))
    mail = await smtp.wait_for(f"{name}@example.com")
    code = mail.get_content().split("Your reset code: ")[1].split()[0]

    changed = await client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=first,
                                                                       password="pw2"))
    assert changed.changed == ["password"]
    assert (await client.request(AUTH_VERIFY, VerifyRequest(token=first))).username == name
    assert (await failure(client, AUTH_VERIFY, VerifyRequest(token=second))).reason == "revoked"
    # The reset code mailed before the change is void too.
    void = await failure(client, AUTH_RESET_CONFIRM, ResetConfirmRequest(token=code,
                                                                         password="pw3"))
    assert void.code == "token_invalid"
    # A change made with a newer token keeps that one only.
    third = await token_of(client, name, "pw2")
    await client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=third, password="pw4"))
    assert (await failure(client, AUTH_VERIFY, VerifyRequest(token=first))).reason == "revoked"
    assert (await client.request(AUTH_VERIFY, VerifyRequest(token=third))).username == name


async def test_a_reset_by_mail_revokes_the_kept_token_as_well(
    client: Bus, smtp: MailSink
) -> None:
    name, token = await account(client)
    await client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=token, password="pw2"))
    await client.request(AUTH_RESET, ResetRequest(username=name, email=f"{name}@example.com"))
    mail = await smtp.wait_for(f"{name}@example.com")
    code = mail.get_content().split("Your reset code: ")[1].split()[0]
    await client.request(AUTH_RESET_CONFIRM, ResetConfirmRequest(token=code, password="pw3"))
    assert (await failure(client, AUTH_VERIFY, VerifyRequest(token=token))).reason == "revoked"


async def test_renames(client: Bus) -> None:
    name, token = await account(client)
    taken, _ = await account(client)
    heard = await overhear(client, AUTH_USER_RENAMED.filter)
    clash = await failure(client, AUTH_UPDATE_USER, UpdateUserRequest(
        token=token, username=taken, first_name="Zed"))
    assert (clash.code, clash.field) == ("user_exists", "username")
    assert (await me(client, token)).first_name == "Ann"  # nothing of it was stored
    same = await client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=token, username=name))
    assert same.changed == []  # not a rename: nothing announced
    new = unique()
    renamed = await client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=token,
                                                                       username=new))
    assert (renamed.username, renamed.changed) == (new, ["username"])
    event = json.loads((await asyncio.wait_for(heard.get(), 5)).payload)
    assert event == {"user_id": (await me(client, token)).id, "old_username": name,
                     "new_username": new}
    assert heard.empty()


async def test_concurrent_renames_to_one_name_let_one_win(client: Bus) -> None:
    tokens = [(await account(client))[1] for _ in range(4)]
    wanted = unique()
    results = await asyncio.gather(*(
        client.request(AUTH_UPDATE_USER, UpdateUserRequest(token=token, username=wanted))
        for token in tokens), return_exceptions=True)
    won = [r for r in results if not isinstance(r, BaseException)]
    lost = [r for r in results if isinstance(r, ServiceError)]
    assert len(won) == 1 and len(lost) == 3, results
    assert {error.code for error in lost} == {"user_exists"}


async def test_a_gone_account_cannot_be_changed(client: Bus) -> None:
    _, token = await account(client)
    await client.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))
    gone = await failure(client, AUTH_UPDATE_USER, UpdateUserRequest(token=token,
                                                                     first_name="X"))
    assert gone.code == "user_not_found"
    read = await failure(client, AUTH_USER, UserRequest(token=token))
    assert (read.code, read.reason) == ("token_invalid", "revoked")


@pytest.mark.parametrize("operation", [AUTH_USER, AUTH_UPDATE_USER])
@pytest.mark.parametrize("mirror", ["hall", "+"])  # a mirror's own account, the shared one
def test_mirror_accounts_may_not_ask(operation: Operation[Any, Any], mirror: str) -> None:
    """Who may call these: the bridge, services and operators (any token's holder, through
    the bridge); a mirror's account may not publish them at all."""
    assert not mirror_may(mirror, "hall", operation.template, Access.PUBLISH)
