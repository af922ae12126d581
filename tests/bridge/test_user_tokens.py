"""The user API's token failures (seed 003): flask-jwt-extended's statuses and bodies, row by
row of docs/http-api.md's table, on every endpoint that takes a token, as auth classifies the
token (PyJWT's words) and the bridge parses the header."""

from __future__ import annotations

import secrets
import time
from collections.abc import AsyncIterator, Callable

import httpx
import jwt
import pytest
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bridge.app import create_app
from bridge.server import serving
from bridge.user_family import token_user
from services.auth.accounts import Accounts
from tests.bridge.test_user_accounts import login, record, register
from tests.conftest import Backend
from tests.support import free_port

pytestmark = pytest.mark.usefixtures("bridge_url")

EXPECTED = "Expected 'Authorization: Bearer <JWT>'"
# Each endpoint that takes a token: its method and path, and a body it would accept.
ENDPOINTS = [("GET", "/api/user", None), ("PUT", "/api/user", {"first_name": "Zed"}),
             ("DELETE", "/api/user", None)]


async def ask(http: httpx.AsyncClient, method: str, path: str, body: dict[str, str] | None,
              headers: dict[str, str]) -> tuple[int, object]:
    reply = await http.request(method, path, json=body, headers=headers)
    return reply.status_code, reply.json()


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("headers", "status", "msg"), [
    ({}, 401, "Missing Authorization Header"),
    ({"Authorization": ""}, 401, "Missing Authorization Header"),
    ({"Authorization": "Basic YWxhZGRpbjpvcGVuc2VzYW1l"}, 401,
     f"Missing 'Bearer' type in 'Authorization' header. {EXPECTED}"),
    ({"Authorization": "bearer a.b.c"}, 401,
     f"Missing 'Bearer' type in 'Authorization' header. {EXPECTED}"),
    ({"Authorization": "Bearer"}, 422, f"Bad Authorization header. {EXPECTED}"),
    ({"Authorization": "Bearer a.b.c extra"}, 422, f"Bad Authorization header. {EXPECTED}"),
    ({"Authorization": "Bearer abc"}, 422, "Not enough segments"),
    ({"Authorization": "Bearer abc.def"}, 422, "Not enough segments"),
    ({"Authorization": "Bearer a.b.c"}, 422, "Invalid header padding"),
    ({"Authorization": "Bearer " + "x" * 5000}, 422, "Token is too long"),
])
async def test_header_and_shape_failures(
    http: httpx.AsyncClient, method: str, path: str, body: dict[str, str] | None,
    headers: dict[str, str], status: int, msg: str,
) -> None:
    assert await ask(http, method, path, body, headers) == (status, {"msg": msg})


def claims_of(token: str) -> dict[str, object]:
    decoded: dict[str, object] = jwt.decode(token, options={"verify_signature": False})
    return decoded


def forged(auth_service: Accounts, token: str) -> dict[str, Callable[[], str]]:
    """Tokens made from a real ``token``, each failing in one way."""
    header = jwt.get_unverified_header(token)
    claims = claims_of(token)
    keyring = auth_service.tokens.keyring
    now = int(time.time())
    return {
        # Signed with the real keyring, past its exp: only the expiry is wrong.
        "expired": lambda: keyring.sign({**claims, "jti": secrets.token_urlsafe(16),
                                         "iat": now - 120, "exp": now - 60}),
        "other key": lambda: jwt.encode(claims, "k" * 64, "HS256", headers=header),
        "unknown kid": lambda: jwt.encode(claims, "k" * 64, "HS256",
                                          headers={"kid": "nobody"}),
        "swapped signature": lambda: ".".join([
            *token.split(".")[:2], keyring.sign({**claims, "jti": "another"}).split(".")[2]]),
        "alg none": lambda: jwt.encode(claims, "", "none", headers={"kid": header["kid"]}),
    }


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS)
@pytest.mark.parametrize(("case", "status", "msg"), [
    ("expired", 401, "Token has expired"),
    ("other key", 422, "Signature verification failed"),
    ("unknown kid", 422, "Signature verification failed"),
    ("swapped signature", 422, "Signature verification failed"),
    ("alg none", 422, "The specified alg value is not allowed"),
])
async def test_forged_and_expired_tokens(
    http: httpx.AsyncClient, auth_service: Accounts, method: str, path: str,
    body: dict[str, str] | None, case: str, status: int, msg: str,
) -> None:
    name = await register(http)
    token = forged(auth_service, await login(http, name))[case]()
    assert await ask(http, method, path, body, {"Authorization": f"Bearer {token}"}) == (
        status, {"msg": msg})
    await record(http, await login(http, name))  # nothing happened to the account


async def revoke(http: httpx.AsyncClient, how: str, token: str) -> None:
    """Make ``token`` stop holding, ``how`` the table says it may."""
    if how == "logout":  # through seed 004, whose cookie is the same token
        reply = await http.delete("/auth/logout", headers={"Cookie": f"X-LIVENESS-TOKEN={token}"})
        http.cookies.clear()
    elif how == "password changed":
        name = (await record(http, token))["username"]
        assert isinstance(name, str)
        reply = await http.put("/api/user", json={"password": "changed-pw"},
                               headers={"Authorization": f"Bearer {await login(http, name)}"})
    else:
        reply = await http.delete("/api/user", headers={"Authorization": f"Bearer {token}"})
    assert reply.status_code < 300


@pytest.mark.parametrize("how", ["logout", "password changed", "account deleted"])
async def test_revoked_tokens(http: httpx.AsyncClient, how: str) -> None:
    token = await login(http, await register(http))
    await revoke(http, how, token)
    headers = {"Authorization": f"Bearer {token}"}
    revoked = (401, {"msg": "Token has been revoked"})
    assert await ask(http, "GET", "/api/user", None, headers) == revoked
    put = await ask(http, "PUT", "/api/user", {"first_name": "Zed"}, headers)
    delete = await ask(http, "DELETE", "/api/user", None, headers)
    if how == "account deleted":  # the seed's own replies for a token whose account is gone
        assert (put, delete) == ((404, {"message": "user dose not exists"}),
                                 (402, {"message": "user dose not exists"}))
    else:
        assert (put, delete) == (revoked, revoked)


async def test_the_bearer_may_be_one_of_several_credentials(http: httpx.AsyncClient) -> None:
    """flask-jwt-extended reads comma-separated credentials; exactly one must be Bearer."""
    token = await login(http, await register(http))
    several = {"Authorization": f"Basic YWxhZGRpbjpvcGVuc2VzYW1l, Bearer {token}"}
    assert (await http.get("/api/user", headers=several)).status_code == 200
    twice = {"Authorization": f"Bearer {token}, Bearer {token}"}
    assert await ask(http, "GET", "/api/user", None, twice) == (401, {
        "msg": f"Missing 'Bearer' type in 'Authorization' header. {EXPECTED}"})


@pytest.fixture
async def probe(backend: Backend, auth_service: Accounts) -> AsyncIterator[httpx.AsyncClient]:
    """The bridge with one more route that answers with :func:`token_user`, the check every
    other seed 003 route (files, messages) shares."""

    async def whose(request: Request) -> JSONResponse:
        user = await token_user(request)
        return JSONResponse({"username": user.username, "user_id": user.user_id})

    app = create_app(backend.bus("bridge"))
    app.router.routes.append(Route("/probe", whose, methods=["GET"]))
    port = free_port()
    async with serving(app, "127.0.0.1", port), httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=15
    ) as client:
        yield client


async def test_token_user_answers_the_same_table(
    http: httpx.AsyncClient, probe: httpx.AsyncClient, auth_service: Accounts
) -> None:
    name = await register(http)
    token = await login(http, name)
    mine = await record(http, token)
    good = await probe.get("/probe", headers={"Authorization": f"Bearer {token}"})
    assert good.json() == {"username": name, "user_id": mine["ID"]}
    made = forged(auth_service, token)
    for headers, status, msg in [
        ({}, 401, "Missing Authorization Header"),
        ({"Authorization": "Bearer"}, 422, f"Bad Authorization header. {EXPECTED}"),
        ({"Authorization": "Bearer abc"}, 422, "Not enough segments"),
        ({"Authorization": "Bearer a.b.c"}, 422, "Invalid header padding"),
        ({"Authorization": f"Bearer {made['other key']()}"}, 422,
         "Signature verification failed"),
        ({"Authorization": f"Bearer {made['expired']()}"}, 401, "Token has expired"),
    ]:
        reply = await probe.get("/probe", headers=headers)
        assert (reply.status_code, reply.json()) == (status, {"msg": msg})
    await revoke(http, "account deleted", token)
    gone = await probe.get("/probe", headers={"Authorization": f"Bearer {token}"})
    assert (gone.status_code, gone.json()) == (401, {"msg": "Token has been revoked"})


async def test_seed_000_and_004_answer_as_before(
    http: httpx.AsyncClient, auth_service: Accounts
) -> None:
    """The reasons are new on the wire; the other families still answer a bad token with
    their own 401 (000) and ``Unauthorized users`` (004)."""
    token = await login(http, await register(http))
    for bad in ("abc", "a.b.c", forged(auth_service, token)["expired"]()):
        whoami = await http.get("/whoami", headers={"Authorization": f"Bearer {bad}"})
        assert whoami.status_code == 401 and whoami.json()["type"] == "whoami"
        home = await http.get("/home", headers={"Cookie": f"X-LIVENESS-TOKEN={bad}"})
        assert home.json() == {"status_code": 401, "message": "Unauthorized users"}
    expired = forged(auth_service, token)["expired"]()
    whoami = await http.get("/whoami", headers={"Authorization": f"Bearer {expired}"})
    assert whoami.json() == {"result": "fail", "type": "whoami", "message": "token expired"}
