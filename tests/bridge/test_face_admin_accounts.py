"""Seed 002's admin accounts over HTTP on both backends: the first admin opens, later ones need
an admin's token; logins are throttled; admin and user tokens are each refused where the other
belongs; the family's 404s, 405s and bad bodies answer ``{"detail": ...}``."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from starlette.requests import Request

from bridge.app import _crash
from tests.bridge.face_stack import ADMIN_PASSWORD, FaceStack
from tests.bridge.stack import private_stack
from tests.bridge.test_messaging_tokens import bearer
from tests.bridge.test_session_api import said
from tests.conftest import Backend, needs_photos, photo
from tests.support import unique

pytestmark = needs_photos


@pytest.fixture
def stack(face_admin_stack: FaceStack) -> FaceStack:
    return face_admin_stack  # shared with the other face admin tests (tests/bridge/conftest.py)


async def test_only_an_admin_registers_the_next_admin(stack: FaceStack) -> None:
    http = stack.http
    second = unique("admin")
    body = {"username": second, "password": "second-pw"}
    refused = await http.post("/jwt/register", json=body)
    assert refused.status_code == 401
    assert refused.json() == {"detail": "an admin exists already: only an admin "
                                        "(with Authorization: Bearer) may add one"}
    forged = await http.post("/jwt/register", json=body, headers=bearer("not.a.token"))
    assert forged.status_code == 401 and list(forged.json()) == ["detail"]

    made = await http.post("/jwt/register", json=body, headers=stack.auth)
    assert said(made) == (201, {"detail": f"admin {second} registered"})
    again = await http.post("/jwt/register", json=body, headers=stack.auth)
    assert said(again) == (409, {"detail": "admin already exists"})
    login = await http.post("/jwt/login", json=body)
    assert login.status_code == 200 and list(login.json()) == ["token"]


async def test_wrong_credentials_and_bad_bodies(stack: FaceStack) -> None:
    http = stack.http
    wrong = await http.post("/jwt/login", json={"username": stack.admin, "password": "nope"})
    assert said(wrong) == (401, {"detail": "wrong username or password"})
    nobody = await http.post("/jwt/login", json={"username": unique(), "password": "x"})
    assert said(nobody) == (401, {"detail": "wrong username or password"})
    missing = await http.post("/jwt/login", json={"username": stack.admin})
    assert said(missing) == (400, {"detail": "password: is required"})
    broken = await http.post("/jwt/login", content=b"{not json",
                             headers={"content-type": "application/json"})
    assert broken.status_code == 400 and list(broken.json()) == ["detail"]
    huge = await http.post("/jwt/login", json={"username": "x" * 20_000, "password": "p"})
    assert huge.status_code == 413 and list(huge.json()) == ["detail"]
    plain = await http.post("/jwt/login", content=b"username=x",
                            headers={"content-type": "text/plain"})
    assert plain.status_code == 415 and list(plain.json()) == ["detail"]
    deep = await http.post("/jwt/login", content=b'{"username": ' + b"[" * 900 + b"]" * 900
                           + b"}", headers={"content-type": "application/json"})
    assert deep.status_code == 400 and "nested" in deep.json()["detail"]
    typed = await http.post("/jwt/register", json={"username": ["x"], "password": "pw"},
                            headers=stack.auth)
    assert typed.status_code == 400 and "username" in typed.json()["detail"]


async def test_admin_logins_are_throttled(stack: FaceStack) -> None:
    http = stack.http
    name = unique("admin")
    made = await http.post("/jwt/register", json={"username": name, "password": "right-pw"},
                           headers=stack.auth)
    assert made.status_code == 201
    for _ in range(5):  # MIRRORHUB_LOGIN_MAX_FAILURES
        reply = await http.post("/jwt/login", json={"username": name, "password": "wrong"})
        assert reply.status_code == 401
    held = await http.post("/jwt/login", json={"username": name, "password": "right-pw"})
    assert held.status_code == 429
    assert held.json()["detail"].startswith("Too many failed login attempts; try again in ")
    assert list(held.json()) == ["detail"] and int(held.headers["retry-after"]) > 0
    # Another admin, and the users' logins, are not held.
    other = await http.post("/jwt/login", json={"username": stack.admin,
                                                "password": ADMIN_PASSWORD})
    assert other.status_code == 200


async def test_admin_and_user_tokens_are_each_refused_where_the_other_belongs(
    stack: FaceStack,
) -> None:
    http = stack.http
    user = unique("ann")
    registered = await http.post("/api/register", data={
        "username": user, "password": "user-pw", "first_name": "Ann", "last_name": "A"})
    assert registered.status_code == 201
    user_token = (await http.post("/login", data={"username": user, "password": "user-pw"})
                  ).json()["token"]
    assert (await http.get("/whoami", headers=bearer(user_token))).status_code == 200

    # An admin's token is no user's token.
    whoami = await http.get("/whoami", headers=stack.auth)
    assert whoami.status_code == 401 and whoami.json()["result"] == "fail"
    record = await http.get("/api/user", headers=stack.auth)
    assert said(record) == (422, {"msg": "Invalid issuer"})
    home = await http.get("/home", headers={"Cookie": f"X-LIVENESS-TOKEN={stack.token}"})
    assert said(home) == (401, {"status_code": 401, "message": "Unauthorized users"})
    upload = await http.post("/api/upload", data={"type": "notes"},
                             files={"file": ("n.txt", b"note")}, headers=stack.auth)
    assert said(upload) == (422, {"msg": "Invalid issuer"})
    enrol = await http.post("/register/face", data={"displayname": stack.admin},
                            files={"face_image": ("o.jpg", photo("train/obama/obama.jpg"))},
                            headers=stack.auth)
    assert enrol.status_code == 401 and enrol.json()["result"] == "fail"

    # A user's token is no admin's token, on every /api/face route and for /jwt/register.
    user_auth = bearer(user_token)
    for method, path in (("GET", "/api/face"), ("GET", "/api/face/x"),
                         ("DELETE", "/api/face/x"), ("PATCH", "/api/face/x"),
                         ("POST", "/api/face/register"), ("PUT", "/api/face/register"),
                         ("POST", "/api/face/find"), ("POST", "/api/face/x/not_me")):
        reply = await http.request(method, path, headers=user_auth)
        assert reply.status_code == 401, (method, path)
        assert reply.json() == {"detail": "not an admin's token: Invalid issuer"}
        no_token = (401, {"detail": "send Authorization: Bearer <token from /jwt/login>"})
        assert said(await http.request(method, path)) == no_token
        for header in ("Basic YWxhZGRpbjpvcGVuc2VzYW1l", "Bearer", "Bearer " + "x" * 5000):
            reply = await http.request(method, path, headers={"Authorization": header})
            assert said(reply) == no_token, header
    refused = await http.post("/jwt/register", json={"username": unique(), "password": "p"},
                              headers=user_auth)
    assert refused.status_code == 401


async def test_the_familys_exact_paths_answer_detail(stack: FaceStack) -> None:
    http = stack.http
    assert said(await http.get("/jwt/login")) == (405, {"detail": "Method Not Allowed"})
    assert said(await http.post("/api/face")) == (405, {"detail": "Method Not Allowed"})
    assert said(await http.get("/jwt/nothing")) == (404, {"detail": "Not Found"})
    slash = await http.get("/api/face/", headers=stack.auth)
    assert said(slash) == (404, {"detail": "Not Found: paths take no trailing slash "
                                           "(/api/face)"})
    assert said(await http.put("/api/face/x", headers=stack.auth)) == (
        405, {"detail": "Method Not Allowed"})



async def test_a_failure_of_the_bridge_on_the_familys_paths_is_a_500_detail() -> None:
    """The handler every unexpected exception reaches (bridge/app.py), for a request of this
    family and for one of seed 000's, which keeps its own shape."""
    for path, body in (("/api/face/find", {"detail": "internal error"}),
                       ("/jwt/login", {"detail": "internal error"}),
                       ("/face", {"result": "fail", "type": "http",
                                  "message": "internal error"})):
        request = Request({"type": "http", "method": "POST", "path": path, "headers": [],
                           "query_string": b""})
        response = await _crash(request, RuntimeError("boom"))
        assert response.status_code == 500
        assert json.loads(bytes(response.body)) == body


async def test_racing_first_registrations_make_one_admin(backend: Backend,
                                                         tmp_path: Path) -> None:
    async with private_stack(backend, tmp_path) as own:
        names = [unique("first") for _ in range(5)]
        replies = await asyncio.gather(*(
            own.http.post("/jwt/register", json={"username": name, "password": "pw-1"})
            for name in names))
        statuses = sorted(reply.status_code for reply in replies)
        assert statuses == [201, 401, 401, 401, 401], [r.text for r in replies]
        logins = [await own.http.post("/jwt/login", json={"username": name, "password": "pw-1"})
                  for name in names]
        assert sorted(login.status_code for login in logins) == [200, 401, 401, 401, 401]


async def test_a_405_names_the_methods_of_its_own_path(stack: FaceStack) -> None:
    """``/api/face/find`` also fits ``/api/face/{id}``'s template, whose methods are another
    path's: the 405 names find's own."""
    wrong = await stack.http.request("OPTIONS", "/api/face/find", headers=stack.auth)
    assert said(wrong) == (405, {"detail": "Method Not Allowed"})
    assert wrong.headers["allow"] == "POST"
    both = await stack.http.request("OPTIONS", "/api/face/register", headers=stack.auth)
    assert both.headers["allow"] == "POST, PUT"
