"""Throttled logins and password resets over HTTP, in every family's shape, with the window
made short: after the limit of failures for a username (or from a client address) even the
right password is refused with 429 and Retry-After, until the window has passed."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.bridge.stack import Stack, bridge_at, private_stack
from tests.conftest import Backend, create_database, drop_database
from tests.support import unique

MAX = 3
WINDOW = 2.5
PASSWORD = "pw-12345"
LOGIN = re.compile(r"Too many failed login attempts; try again in (\d+) seconds")
RESET = re.compile(r"Too many failed password reset attempts; try again in (\d+) seconds")
# Each family's login: its path, and the status of a wrong password.
FAMILIES = {"000": ("/login", 200), "003": ("/api/login", 403), "004": ("/auth/login", 400)}


async def account(http: httpx.AsyncClient) -> str:
    name = unique()
    reply = await http.post("/register/user", data={
        "username": name, "password": PASSWORD, "email": f"{name}@example.com"})
    assert reply.json()["result"] == "success"
    return name


async def log_in(http: httpx.AsyncClient, family: str, name: str, password: str,
                 **headers: str) -> httpx.Response:
    return await http.post(FAMILIES[family][0], json={"username": name, "password": password},
                           headers=headers)


def succeeded(family: str, reply: httpx.Response) -> bool:
    if family == "000":
        return bool(reply.status_code == 200 and reply.json()["result"] == "success")
    return reply.status_code == {"003": 202, "004": 200}[family]


def throttled(family: str, reply: httpx.Response, pattern: re.Pattern[str] = LOGIN,
              type_: str = "login") -> int:
    """The reply's Retry-After, checked against its body in ``family``'s shape."""
    assert reply.status_code == 429, reply.text
    retry_after = int(reply.headers["retry-after"])
    assert 1 <= retry_after <= WINDOW + 1
    body = reply.json()
    match = pattern.fullmatch(body["message"])
    assert match is not None and int(match.group(1)) == retry_after
    shape = {"000": {"result": "fail", "type": type_, "message": body["message"]},
             "003": {"message": body["message"]},
             "004": {"status_code": 429, "message": body["message"]}}[family]
    assert body == shape
    return retry_after


@pytest.fixture(scope="module")
async def stack(backend: Backend,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Stack]:
    # One for the module: every test locks usernames of its own, and the per-address limit
    # of this stack is the suite's, far out of reach.
    async with private_stack(backend, tmp_path_factory.mktemp("throttle"),
                             login_max_failures=MAX, login_window=WINDOW) as made:
        yield made


@pytest.mark.parametrize("family", ["000", "003", "004"])
async def test_a_username_is_locked_after_its_failures_until_the_window_passes(
    stack: Stack, family: str
) -> None:
    http = stack.http
    name = await account(http)
    for _ in range(MAX):
        wrong = await log_in(http, family, name, "wrong")
        assert wrong.status_code == FAMILIES[family][1] and not succeeded(family, wrong)
    retry_after = throttled(family, await log_in(http, family, name, PASSWORD))
    # Refusals do not count: the lockout still ends on time.
    throttled(family, await log_in(http, family, name, "wrong"))
    other = await account(http)  # another username is not concerned
    assert succeeded(family, await log_in(http, family, other, PASSWORD))
    await asyncio.sleep(retry_after + 0.1)
    assert succeeded(family, await log_in(http, family, name, PASSWORD))


async def test_the_count_is_one_for_every_family_and_unknown_names_alike(stack: Stack) -> None:
    http = stack.http
    name = await account(http)
    for family in ("000", "003", "004"):
        await log_in(http, family, name, "wrong")
    for family in ("000", "003", "004"):
        throttled(family, await log_in(http, family, name, PASSWORD))
    # A username nobody has is locked the same way: the lockout tells nobody it is unknown.
    nobody = unique()
    for _ in range(MAX):
        assert (await log_in(http, "003", nobody, "x")).status_code == 403
    throttled("003", await log_in(http, "003", nobody, "x"))
    throttled("004", await log_in(http, "004", nobody, "x"))


async def test_a_reset_is_throttled_apart_from_logins(stack: Stack) -> None:
    http = stack.http
    name = await account(http)
    email = f"{name}@example.com"
    for _ in range(MAX):
        wrong = await http.post("/reset_password", data={"username": name,
                                                         "email": "not@example.com"})
        assert wrong.json()["message"] == "Not Found User"
    right = await http.post("/reset_password", data={"username": name, "email": email})
    retry_after = throttled("000", right, RESET, "reset_password")
    # Its own count: the user may still log in, and failed logins do not lock resets.
    assert succeeded("003", await log_in(http, "003", name, PASSWORD))
    await asyncio.sleep(retry_after + 0.1)
    for _ in range(MAX + 1):
        await log_in(http, "000", name, "wrong")
    sent = await http.post("/reset_password", data={"username": name, "email": email})
    assert sent.json()["result"] == "success"


async def test_a_burst_of_guesses_gets_no_more_than_the_limit(stack: Stack) -> None:
    name = await account(stack.http)
    replies = await asyncio.gather(*(log_in(stack.http, "003", name, f"guess-{i}")
                                     for i in range(12)))
    statuses = sorted(reply.status_code for reply in replies)
    assert statuses == [403] * MAX + [429] * (12 - MAX)


async def test_the_client_address_has_a_limit_of_its_own(
    backend: Backend, tmp_path: Path
) -> None:
    async with private_stack(backend, tmp_path, trusted_proxies="127.0.0.1",
                             login_max_failures_per_address=4, login_window=WINDOW) as stack:
        http, here, there = stack.http, "203.0.113.5", "203.0.113.6"
        name = await account(http)
        for _ in range(4):  # a different username each time: the per-username limit is far
            reply = await log_in(http, "003", unique(), "x", **{"X-Forwarded-For": here})
            assert reply.status_code == 403
        locked = await log_in(http, "003", name, PASSWORD, **{"X-Forwarded-For": here})
        throttled("003", locked)
        # Behind the trusted proxy (127.0.0.1) another client is another address.
        assert succeeded("003", await log_in(http, "003", name, PASSWORD,
                                             **{"X-Forwarded-For": there}))
        # A bridge trusting no proxy counts its peer, whatever X-Forwarded-For claims.
        async with bridge_at(stack.backend) as direct:
            assert succeeded("003", await log_in(direct, "003", name, PASSWORD,
                                                 **{"X-Forwarded-For": here}))
            for i in range(4):
                await log_in(direct, "003", unique(), "x", **{"X-Forwarded-For": f"10.0.0.{i}"})
            throttled("003", await log_in(direct, "003", name, PASSWORD,
                                          **{"X-Forwarded-For": "10.0.0.9"}))
            throttled("004", await direct.post("/auth/login", json={
                "username": name, "password": PASSWORD}))


async def test_every_auth_instance_on_the_database_agrees(
    backend: Backend, tmp_path: Path
) -> None:
    database = await create_database(backend, "throttle")
    try:
        async with private_stack(backend, tmp_path, database=database,
                                 login_max_failures=MAX, login_window=WINDOW) as first:
            name = await account(first.http)
            for _ in range(MAX):
                await log_in(first.http, "003", name, "wrong")
        async with private_stack(backend, tmp_path, database=database,
                                 login_max_failures=MAX, login_window=WINDOW) as second:
            retry_after = throttled("003", await log_in(second.http, "003", name, PASSWORD))
            await asyncio.sleep(retry_after + 0.1)
            assert succeeded("003", await log_in(second.http, "003", name, PASSWORD))
    finally:
        await drop_database(database)
