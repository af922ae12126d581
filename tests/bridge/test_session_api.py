"""The session API (seed 004) over HTTP: HTTP -> bridge -> MQTT -> auth -> database, every
documented success and failure with its status and exact body, and the cookie."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.app import create_app
from bridge.server import serving
from services.auth.accounts import Accounts
from tests.conftest import Backend
from tests.support import free_port, unique

pytestmark = pytest.mark.usefixtures("bridge_url")

COOKIE = "X-LIVENESS-TOKEN"
TTL = 3600  # tests.conftest.auth_settings


def body(status: int, message: str) -> dict[str, object]:
    return {"status_code": status, "message": message}


def said(reply: httpx.Response) -> tuple[int, object]:
    return reply.status_code, reply.json()


def cookie_of(reply: httpx.Response) -> dict[str, str]:
    """The one Set-Cookie of ``reply`` as {name: value} plus its attributes, as written."""
    [header] = reply.headers.get_list("set-cookie")
    first, *attributes = header.split("; ")
    name, _, value = first.partition("=")
    parsed = {"name": name, "value": value}
    for attribute in attributes:
        key, _, val = attribute.partition("=")
        parsed[key] = val
    return parsed


async def register(http: httpx.AsyncClient, fullname: str = "Ann Example",
                   username: str | None = None, password: str = "pw-12345") -> str:
    name = username or unique()
    reply = await http.post("/auth/register", json={
        "fullname": fullname, "username": name, "password": password})
    assert said(reply) == (201, body(201, "Successfully created account!"))
    return name


async def login(http: httpx.AsyncClient, name: str, password: str = "pw-12345") -> str:
    reply = await http.post("/auth/login", json={"username": name, "password": password})
    assert said(reply) == (200, body(200, "Login successfully!"))
    return cookie_of(reply)["value"]


def with_cookie(token: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={token}"}


async def test_root_is_found(http: httpx.AsyncClient) -> None:
    assert said(await http.get("/")) == (200, body(200, "You found me!"))


async def test_register_login_home_logout(http: httpx.AsyncClient) -> None:
    name = await register(http, fullname="Ann Example")
    reply = await http.post("/auth/login", json={"username": name, "password": "pw-12345"})
    assert said(reply) == (200, body(200, "Login successfully!"))
    cookie = cookie_of(reply)
    assert cookie["name"] == COOKIE and cookie["value"].count(".") == 2
    assert {k: v for k, v in cookie.items() if k not in ("name", "value")} == {
        "HttpOnly": "", "Max-Age": str(TTL), "Path": "/", "SameSite": "Lax"}
    # httpx keeps the cookie, as a browser would.
    assert said(await http.get("/home")) == (200, body(200, "Hello Ann Example"))
    out = await http.delete("/auth/logout")
    assert said(out) == (200, body(200, "Logged out"))
    cleared = cookie_of(out)
    assert (cleared["name"], cleared["value"], cleared["Max-Age"]) == (COOKIE, '""', "0")
    assert "Expires" in cleared and "HttpOnly" in cleared and cleared["Path"] == "/"
    assert said(await http.get("/home")) == (401, body(401, "Unauthorized users"))


async def test_a_cookie_replayed_after_logout_is_refused(
    http: httpx.AsyncClient, bridge_url: str
) -> None:
    name = await register(http)
    token = await login(http, name)
    other = await login(http, name)  # another device of the same user
    async with httpx.AsyncClient(base_url=bridge_url) as replayer:
        assert (await replayer.get("/home", headers=with_cookie(token))).status_code == 200
        out = await replayer.delete("/auth/logout", headers=with_cookie(token))
        assert said(out) == (200, body(200, "Logged out"))
        replay = await replayer.get("/home", headers=with_cookie(token))
        assert said(replay) == (401, body(401, "Unauthorized users"))
        # Revoked on the server: the seed 000 side refuses it as a bearer token too.
        whoami = await replayer.get("/whoami", headers={"Authorization": f"Bearer {token}"})
        assert whoami.status_code == 401
        # The user's other session lives on; logging out twice is still logged out.
        assert (await replayer.get("/home", headers=with_cookie(other))).status_code == 200
        again = await replayer.delete("/auth/logout", headers=with_cookie(token))
        assert said(again) == (200, body(200, "Logged out"))


async def test_logout_without_a_cookie_is_logged_out(http: httpx.AsyncClient) -> None:
    assert said(await http.delete("/auth/logout")) == (200, body(200, "Logged out"))
    bad = await http.delete("/auth/logout", headers=with_cookie("not-a-token"))
    assert said(bad) == (200, body(200, "Logged out"))


@pytest.mark.parametrize("cookie", [None, "", "not-a-token", "a.b.c", "x" * 5000])
async def test_home_without_a_good_cookie_is_unauthorized(
    http: httpx.AsyncClient, cookie: str | None
) -> None:
    headers = with_cookie(cookie) if cookie is not None else {}
    assert said(await http.get("/home", headers=headers)) == (
        401, body(401, "Unauthorized users"))


@pytest.mark.parametrize("missing", ["fullname", "username", "password"])
@pytest.mark.parametrize("how", ["absent", "empty", "blank", "null"])
async def test_register_without_a_field_is_the_documented_400(
    http: httpx.AsyncClient, missing: str, how: str
) -> None:
    fields: dict[str, object] = {"fullname": "Ann Example", "username": unique(),
                                 "password": "pw-12345"}
    if how == "absent":
        del fields[missing]
    else:
        fields[missing] = {"empty": "", "blank": "   ", "null": None}[how]
    reply = await http.post("/auth/register", json=fields)
    assert said(reply) == (400, body(400, "Name, Username, and Password is required"))


@pytest.mark.parametrize(("field", "value", "label"), [
    ("fullname", "Ann", "Name"),
    ("fullname", "  Ann  ", "Name"),  # surrounding whitespace does not count
    ("username", "abcd", "Username"),
    ("username", " abcd ", "Username"),
    ("password", "1234", "Password"),
])
async def test_register_fields_under_five_characters_say_which(
    http: httpx.AsyncClient, field: str, value: str, label: str
) -> None:
    fields = {"fullname": "Ann Example", "username": unique(), "password": "pw-12345",
              field: value}
    reply = await http.post("/auth/register", json=fields)
    assert said(reply) == (400, body(400, f"{label} must be at least 5 characters"))


async def test_five_characters_are_enough(http: httpx.AsyncClient) -> None:
    name = unique()[-5:]
    await register(http, fullname="Bea X", username=name, password="  45 ")
    await login(http, name, "  45 ")


async def test_a_taken_username_is_a_400(http: httpx.AsyncClient) -> None:
    name = await register(http)
    again = await http.post("/auth/register", json={
        "fullname": "Someone Else", "username": name, "password": "other-pw"})
    assert said(again) == (400, body(400, "Username already exists!"))
    await login(http, name)  # the first account is untouched


@pytest.mark.parametrize(("value", "label"), [(12345, "Username"), (["a"], "Username"),
                                              ({"a": 1}, "Username"), (True, "Username")])
async def test_wrong_types_are_400s_naming_the_field(
    http: httpx.AsyncClient, value: object, label: str
) -> None:
    reply = await http.post("/auth/register", json={
        "fullname": "Ann Example", "username": value, "password": "pw-12345"})
    assert said(reply) == (400, body(400, f"{label} must be a string"))
    login_reply = await http.post("/auth/login", json={"username": value, "password": "x"})
    assert said(login_reply) == (400, body(400, f"{label} must be a string"))


async def test_login_failures_are_the_documented_400s(http: httpx.AsyncClient) -> None:
    name = await register(http)
    required = body(400, "Username and Password is required")
    for fields in ({}, {"username": name}, {"password": "pw-12345"},
                   {"username": "", "password": "pw-12345"}):
        assert said(await http.post("/auth/login", json=fields)) == (400, required)
    unknown = await http.post("/auth/login", json={"username": unique(), "password": "x"})
    assert said(unknown) == (400, body(400, "Username not found!"))
    not_a_name = await http.post("/auth/login", json={"username": "a\x01b", "password": "x"})
    assert said(not_a_name) == (400, body(400, "Username not found!"))
    wrong = await http.post("/auth/login", json={"username": name, "password": "wrong-pw"})
    assert said(wrong) == (400, body(400, "Password is incorrect!"))
    assert "set-cookie" not in wrong.headers


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b"{", "application/json", 400),
    (b"[1, 2]", "application/json", 400),
    (b"\xff\xfe", "application/json", 400),
    (b"[" * 100 + b"]" * 100, "application/json", 400),
    (b"fullname=a", "text/plain", 415),
    (b'{"fullname": "' + b"x" * 20_000 + b'"}', "application/json", 413),
])
async def test_bad_bodies_answer_in_the_family_shape(
    http: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    for path in ("/auth/register", "/auth/login"):
        reply = await http.post(path, content=content, headers={"Content-Type": content_type})
        assert reply.status_code == status
        answer = reply.json()
        assert set(answer) == {"status_code", "message"} and answer["status_code"] == status


async def test_overlong_fields_are_400s_in_the_family_shape(http: httpx.AsyncClient) -> None:
    reply = await http.post("/auth/register", json={
        "fullname": "Ann Example", "username": "u" * 65, "password": "pw-12345"})
    assert reply.status_code == 400
    assert reply.json() == body(400, reply.json()["message"])
    assert "username" in reply.json()["message"]


async def test_wrong_methods_and_trailing_slashes_answer_in_the_family_shape(
    http: httpx.AsyncClient,
) -> None:
    wrong = await http.get("/auth/login")
    assert said(wrong) == (405, body(405, "Method Not Allowed"))
    assert wrong.headers["allow"] == "POST"
    slash = await http.get("/home/")
    assert said(slash) == (404, body(
        404, "Not Found: paths take no trailing slash (/home)"))


async def test_delete_user(http: httpx.AsyncClient, bridge_url: str) -> None:
    name = await register(http)
    token = await login(http, name)
    other = await login(http, name)
    reply = await http.delete("/user/delete")
    assert said(reply) == (200, body(200, "Successfully deleted user!"))
    assert cookie_of(reply)["Max-Age"] == "0"
    async with httpx.AsyncClient(base_url=bridge_url) as replayer:
        for each in (token, other):
            home = await replayer.get("/home", headers=with_cookie(each))
            assert said(home) == (401, body(401, "Unauthorized users"))
        again = await replayer.delete("/user/delete", headers=with_cookie(other))
        assert said(again) == (400, body(400, "Failed to delete user!"))
    gone = await http.post("/auth/login", json={"username": name, "password": "pw-12345"})
    assert said(gone) == (400, body(400, "Username not found!"))


@pytest.mark.parametrize("cookie", [None, "not-a-token", "x" * 5000])
async def test_delete_user_without_a_good_cookie_is_unauthorized(
    http: httpx.AsyncClient, cookie: str | None
) -> None:
    headers = with_cookie(cookie) if cookie is not None else {}
    reply = await http.delete("/user/delete", headers=headers)
    assert said(reply) == (400, body(400, "Unauthorized users"))


async def test_one_account_answers_in_every_family(http: httpx.AsyncClient) -> None:
    name = await register(http, fullname="Cara Cross")
    # Seed 000's login and token check know the account made through seed 004...
    token = await http.post("/login", data={"username": name, "password": "pw-12345"})
    assert token.json()["result"] == "success"
    me = await http.get("/whoami", headers={"Authorization": f"Bearer {token.json()['token']}"})
    assert me.json() == {"result": "success", "type": "whoami", "username": name}
    # ...and a seed 000 token is a session cookie, since both are the one user store's.
    home = await http.get("/home", headers=with_cookie(token.json()["token"]))
    assert said(home) == (200, body(200, "Hello Cara Cross"))
    # An account made through seed 000 (no fullname) logs in through seed 004.
    other = unique()
    made = await http.post("/register/user", data={
        "username": other, "password": "pw-12345", "email": f"{other}@example.com"})
    assert made.json() == {"result": "success", "type": "register_user"}
    await login(http, other)
    assert said(await http.get("/home")) == (200, body(200, f"Hello {other}"))


@pytest.fixture
async def secure_bridge(backend: Backend, auth_service: Accounts) -> AsyncIterator[str]:
    port = free_port()
    async with serving(create_app(backend.bus("bridge"), cookie_secure=True), "127.0.0.1",
                       port):
        yield f"http://127.0.0.1:{port}"


async def test_the_cookie_is_secure_when_configured(
    http: httpx.AsyncClient, secure_bridge: str
) -> None:
    name = await register(http)
    async with httpx.AsyncClient(base_url=secure_bridge) as client:
        reply = await client.post("/auth/login", json={"username": name, "password": "pw-12345"})
        assert reply.status_code == 200
        assert cookie_of(reply)["Secure"] == ""
        out = await client.delete("/auth/logout", headers=with_cookie(cookie_of(reply)["value"]))
        assert "Secure" in cookie_of(out)
