"""The user API's accounts (seed 003) over HTTP: HTTP -> bridge -> MQTT -> auth -> database,
every documented success and failure with its status and exact body, and one account in every
family."""

from __future__ import annotations

import asyncio
import json

import cv2
import httpx
import numpy as np
import pytest

from broker.client import Bus
from schemas.auth import AUTH_USER_RENAMED
from services.auth.accounts import Accounts
from tests.bridge.test_messaging_tokens import bearer
from tests.bridge.test_session_api import said
from tests.conftest import Backend
from tests.support import overhear, unique

pytestmark = pytest.mark.usefixtures("bridge_url")

PASSWORD_SHOWN = "********"


async def register(http: httpx.AsyncClient, password: str = "pw-123", **fields: str) -> str:
    name = fields.pop("username", None) or unique()
    reply = await http.post("/api/register", data={
        "username": name, "password": password, "first_name": "Ann", "last_name": "Example",
        **fields})
    assert said(reply) == (201, {"message": "user created successfully"})
    return name


async def login(http: httpx.AsyncClient, name: str, password: str = "pw-123") -> str:
    reply = await http.post("/api/login", json={"username": name, "password": password})
    body = reply.json()
    assert reply.status_code == 202
    assert body == {"access_token": body["access_token"], "message": "login succeeded"}
    token: str = body["access_token"]
    return token


def png() -> bytes:
    ok, data = cv2.imencode(".png", np.full((8, 8, 3), 200, np.uint8))
    assert ok
    return bytes(data)


async def upload(
    http: httpx.AsyncClient, token: str, filename: str, type_: str = "profile"
) -> None:
    reply = await http.post("/api/upload", data={"type": type_},
                            files={"file": (filename, png())}, headers=bearer(token))
    assert said(reply) == (200, {"message": "uploaded file successfully"})


async def set_profile(http: httpx.AsyncClient, token: str, filename: str) -> None:
    """Upload a picture as the token's profile and name it (as the seed says: register, upload,
    then PUT)."""
    await upload(http, token, filename)
    reply = await http.put("/api/user", data={"profile": filename}, headers=bearer(token))
    assert said(reply) == (201, {"message": "user info modyfied successfully"})


async def record(http: httpx.AsyncClient, token: str, **query: str | int) -> dict[str, object]:
    reply = await http.get("/api/user", params=query, headers=bearer(token))
    assert reply.status_code == 200, reply.text
    [only] = reply.json()["message"]
    assert isinstance(only, dict)
    return only


async def test_register_login_and_read_the_own_record(http: httpx.AsyncClient) -> None:
    name = await register(http)
    token = await login(http, name)
    assert token.count(".") == 2
    await set_profile(http, token, "ann-face.png")
    reply = await http.get("/api/user", headers=bearer(token))
    mine = reply.json()["message"][0]
    assert said(reply) == (200, {"message": [{
        "ID": mine["ID"], "first_name": "Ann", "last_name": "Example",
        "password": PASSWORD_SHOWN, "profile": "ann-face.png", "username": name}]})
    assert isinstance(mine["ID"], int)
    # The same record asked for by its own id, as a query field or in a JSON body.
    assert await record(http, token, id=mine["ID"]) == mine
    by_body = await http.request("GET", "/api/user", json={"id": mine["ID"]},
                                 headers=bearer(token))
    assert by_body.json()["message"] == [mine]


async def test_register_takes_json_and_profile_is_optional(http: httpx.AsyncClient) -> None:
    name = unique()
    reply = await http.post("/api/register", json={
        "username": name, "password": "pw-123", "first_name": "Bea", "last_name": "Bee"})
    assert said(reply) == (201, {"message": "user created successfully"})
    mine = await record(http, await login(http, name))
    assert (mine["first_name"], mine["last_name"], mine["profile"]) == ("Bea", "Bee", None)


async def test_a_taken_username_is_a_409(http: httpx.AsyncClient) -> None:
    name = await register(http)
    again = await http.post("/api/register", data={
        "username": name, "password": "other", "first_name": "X", "last_name": "Y"})
    assert said(again) == (409, {"message": "user already in use"})
    mine = await record(http, await login(http, name))  # the first account is untouched
    assert mine["first_name"] == "Ann"


@pytest.mark.parametrize("missing", ["username", "password", "first_name", "last_name"])
async def test_register_without_a_field_is_a_400_naming_it(
    http: httpx.AsyncClient, missing: str
) -> None:
    fields = {"username": unique(), "password": "pw", "first_name": "A", "last_name": "B"}
    del fields[missing]
    reply = await http.post("/api/register", json=fields)
    assert said(reply) == (400, {"message": f"{missing}: is required"})


@pytest.mark.parametrize(("field", "value"), [
    ("username", "u" * 65), ("username", 42), ("first_name", "   "), ("profile", "p" * 256),
    ("password", ""),
])
async def test_register_with_a_bad_field_is_a_400_naming_it(
    http: httpx.AsyncClient, field: str, value: object
) -> None:
    fields = {"username": unique(), "password": "pw", "first_name": "A", "last_name": "B",
              field: value}
    reply = await http.post("/api/register", json=fields)
    assert reply.status_code == 400
    assert list(reply.json()) == ["message"]
    assert reply.json()["message"].startswith(f"{field}: ")


async def test_login_failures(http: httpx.AsyncClient) -> None:
    name = await register(http)
    bad = {"message": "bad username or password"}
    wrong = await http.post("/api/login", data={"username": name, "password": "wrong"})
    assert said(wrong) == (403, bad)
    unknown = await http.post("/api/login", data={"username": unique(), "password": "pw-123"})
    assert said(unknown) == (403, bad)
    for fields, missing in (({"username": name}, "password"), ({"password": "x"}, "username")):
        reply = await http.post("/api/login", json=fields)
        assert said(reply) == (400, {"message": f"{missing}: is required"})


async def test_another_users_record_shows_its_public_fields_only(
    http: httpx.AsyncClient,
) -> None:
    ann = await register(http)
    bob = await register(http, first_name="Bob", last_name="Secret")
    bob_token = await login(http, bob)
    await set_profile(http, bob_token, "bob.png")
    bob_id = (await record(http, bob_token))["ID"]
    seen = await record(http, await login(http, ann), id=str(bob_id))
    assert seen == {"ID": bob_id, "first_name": None, "last_name": None,
                    "password": PASSWORD_SHOWN, "profile": "bob.png", "username": bob}


@pytest.mark.parametrize(("value", "status", "message"), [
    ("2147483647", 404, "user dose not exists"),
    ("abc", 400, "id: must be a whole number"),
    ("-3", 400, "id: must be a whole number"),
    ("1.5", 400, "id: must be a whole number"),
])
async def test_ids_nobody_has_and_ids_that_are_not_ids(
    http: httpx.AsyncClient, value: str, status: int, message: str
) -> None:
    token = await login(http, await register(http))
    reply = await http.get("/api/user", params={"id": value}, headers=bearer(token))
    assert said(reply) == (status, {"message": message})


async def test_put_changes_what_is_given(http: httpx.AsyncClient) -> None:
    name = await register(http)
    token = await login(http, name)
    await upload(http, token, "new.png")
    reply = await http.put("/api/user", data={"first_name": "Anna", "profile": "new.png"},
                           headers=bearer(token))
    assert said(reply) == (201, {"message": "user info modyfied successfully"})
    mine = await record(http, token)
    assert (mine["first_name"], mine["last_name"], mine["profile"], mine["username"]) == (
        "Anna", "Example", "new.png", name)
    json_put = await http.put("/api/user", json={"last_name": "Other"}, headers=bearer(token))
    assert json_put.status_code == 201
    assert (await record(http, token))["last_name"] == "Other"


async def test_a_profile_names_a_profile_picture_its_user_uploaded(
    http: httpx.AsyncClient,
) -> None:
    nothing = (404, {"message": "your file not found"})
    # At registration there is no upload yet: the seed says to upload, then set it.
    reply = await http.post("/api/register", data={
        "username": unique(), "password": "pw-123", "first_name": "A", "last_name": "B",
        "profile": "me.png"})
    assert said(reply) == nothing
    ann, bob = await login(http, await register(http)), await login(http, await register(http))
    await upload(http, bob, "bob.png")
    await upload(http, ann, "holiday.png", type_="photos")
    for profile in ("never-uploaded.png", "bob.png", "holiday.png", "../bob.png"):
        reply = await http.put("/api/user", data={"profile": profile, "first_name": "Zed"},
                               headers=bearer(ann))
        assert said(reply) == nothing, profile
    mine = await record(http, ann)
    assert (mine["profile"], mine["first_name"]) == (None, "Ann")  # nothing of it stored


async def test_put_with_nothing_to_change_is_a_400(http: httpx.AsyncClient) -> None:
    token = await login(http, await register(http))
    reply = await http.put("/api/user", json={"id": 1}, headers=bearer(token))
    assert said(reply) == (400, {"message": (
        "send at least one of username, password, first_name, last_name, profile")})


async def test_put_changes_only_the_tokens_own_account(http: httpx.AsyncClient) -> None:
    ann, bob = await register(http), await register(http)
    bob_token = await login(http, bob)
    bob_id = (await record(http, bob_token))["ID"]
    # An id (or a username) in the body names no other account: the token's is changed.
    reply = await http.put("/api/user", json={"id": bob_id, "first_name": "Mallory"},
                           headers=bearer(await login(http, ann)))
    assert reply.status_code == 201
    assert (await record(http, bob_token))["first_name"] == "Ann"


async def test_a_rename_is_announced_and_moves_the_login(
    http: httpx.AsyncClient, backend: Backend, auth_service: Accounts
) -> None:
    name, new = await register(http), unique()
    token = await login(http, name)
    async with Bus(backend.bus("test"), role="test") as bus:
        heard = await overhear(bus, AUTH_USER_RENAMED.filter)
        reply = await http.put("/api/user", data={"username": new}, headers=bearer(token))
        assert reply.status_code == 201
        event = json.loads((await asyncio.wait_for(heard.get(), 5)).payload)
    mine = await record(http, token)  # the token follows the account
    assert event == {"user_id": mine["ID"], "old_username": name, "new_username": new}
    assert mine["username"] == new
    gone = await http.post("/api/login", data={"username": name, "password": "pw-123"})
    assert gone.status_code == 403
    await login(http, new)


async def test_a_rename_to_a_taken_username_is_a_409(http: httpx.AsyncClient) -> None:
    ann, bob = await register(http), await register(http)
    token = await login(http, ann)
    reply = await http.put("/api/user", json={"username": bob, "first_name": "Zed"},
                           headers=bearer(token))
    assert said(reply) == (409, {"message": "user already in use"})
    mine = await record(http, token)
    assert (mine["username"], mine["first_name"]) == (ann, "Ann")  # nothing was changed


async def test_a_new_password_keeps_this_token_and_revokes_the_others(
    http: httpx.AsyncClient,
) -> None:
    name = await register(http)
    this, other = await login(http, name), await login(http, name)
    reply = await http.put("/api/user", json={"password": "n3w-pw"}, headers=bearer(this))
    assert reply.status_code == 201
    assert (await record(http, this))["username"] == name
    revoked = await http.get("/api/user", headers=bearer(other))
    assert said(revoked) == (401, {"msg": "Token has been revoked"})
    old = await http.post("/api/login", json={"username": name, "password": "pw-123"})
    assert old.status_code == 403
    await record(http, await login(http, name, "n3w-pw"))


async def test_delete(http: httpx.AsyncClient) -> None:
    name = await register(http)
    token, other = await login(http, name), await login(http, name)
    reply = await http.delete("/api/user", headers=bearer(token))
    assert said(reply) == (200, {"message": "deleted successfully"})
    again = await http.delete("/api/user", headers=bearer(other))
    assert said(again) == (402, {"message": "user dose not exists"})
    put = await http.put("/api/user", json={"first_name": "X"}, headers=bearer(token))
    assert said(put) == (404, {"message": "user dose not exists"})
    read = await http.get("/api/user", headers=bearer(token))
    assert said(read) == (401, {"msg": "Token has been revoked"})
    gone = await http.post("/api/login", json={"username": name, "password": "pw-123"})
    assert gone.status_code == 403
    await register(http, username=name)  # the name is free again


async def test_one_account_in_every_family(http: httpx.AsyncClient) -> None:
    """Registered through seed 004, it logs in through 003 and 000, and 003 shows it."""
    name = unique()
    made = await http.post("/auth/register", json={
        "fullname": "Cara Cross", "username": name, "password": "pw-12345"})
    assert made.status_code == 201
    token = await login(http, name, "pw-12345")
    mine = await record(http, token)
    assert (mine["username"], mine["first_name"], mine["last_name"]) == (name, None, None)
    old_family = await http.post("/login", data={"username": name, "password": "pw-12345"})
    assert old_family.json()["result"] == "success"
    assert await record(http, old_family.json()["token"]) == mine
    # A 003 token is a 004 cookie and a 000 bearer token; a 003 account logs in through 004.
    home = await http.get("/home", headers={"Cookie": f"X-LIVENESS-TOKEN={token}"})
    assert home.json() == {"status_code": 200, "message": "Hello Cara Cross"}
    whoami = await http.get("/whoami", headers=bearer(token))
    assert whoami.json()["username"] == name
    other = await register(http)
    session = await http.post("/auth/login", json={"username": other, "password": "pw-123"})
    assert session.json() == {"status_code": 200, "message": "Login successfully!"}


@pytest.mark.parametrize(("content", "content_type", "status"), [
    (b"{", "application/json", 400),
    (b"[1]", "application/json", 400),
    (b"a=b", "text/plain", 415),
    (b'{"username": "' + b"x" * 20_000 + b'"}', "application/json", 413),
])
async def test_bad_bodies_answer_in_the_family_shape(
    http: httpx.AsyncClient, content: bytes, content_type: str, status: int
) -> None:
    for path in ("/api/register", "/api/login"):
        reply = await http.post(path, content=content, headers={"Content-Type": content_type})
        assert reply.status_code == status
        assert list(reply.json()) == ["message"]


async def test_wrong_methods_and_paths_answer_in_the_family_shape(
    http: httpx.AsyncClient,
) -> None:
    wrong = await http.get("/api/login")
    assert said(wrong) == (405, {"message": "Method Not Allowed"})
    assert wrong.headers["allow"] == "POST"
    user = await http.post("/api/user")
    assert said(user) == (405, {"message": "Method Not Allowed"})
    assert set(user.headers["allow"].split(", ")) == {"GET", "HEAD", "PUT", "DELETE"}
    slash = await http.post("/api/login/")
    assert said(slash) == (404, {"message": "Not Found: paths take no trailing slash (/api/login)"})
    # Only the family's exact paths: another /api/... path is seed 000's shape.
    other = await http.get("/api/users")
    assert said(other) == (404, {"result": "fail", "type": "http", "message": "Not Found"})


async def test_a_405_allows_every_method_of_a_path_served_by_two_routes(
    http: httpx.AsyncClient,
) -> None:
    """/api/message is two routes (GET lists, POST sends): the 405 names both (schemathesis'
    allow_header_conformance found Starlette naming the first route's alone)."""
    for method in ("OPTIONS", "PUT", "DELETE"):
        wrong = await http.request(method, "/api/message")
        assert said(wrong) == (405, {"message": "Method Not Allowed"})
        assert wrong.headers["allow"] == "GET, HEAD, POST"
