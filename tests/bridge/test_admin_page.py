"""The admin page (``/admin``) over HTTP: log in and out with a face admin account, the pages,
their cookies and CSRF tokens, and everyone else refused (no session, a user's token, a
logged-out token, forms without their CSRF token or from another site), on both backends."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from bridge.admin_session import LOGIN_CSRF, SESSION, set_cookie
from bridge.app import create_app
from bridge.server import serving
from broker.client import Bus
from schemas.messaging import MIRROR_STATUS, MIRROR_WIDGETS
from tests.bridge.admin_stack import ADMIN_PASSWORD, AdminStack, admin_stack, csrf_in
from tests.bridge.user_api import account
from tests.conftest import Backend, isolated, photo
from tests.support import free_port, unique

PAGES = ("/admin", "/admin/faces", "/admin/recognitions", "/admin/services")


@pytest.fixture(scope="module")
async def stack(backend: Backend,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminStack]:
    """One stack for the module (its models load once); each test uses its own clients."""
    async with admin_stack(backend, tmp_path_factory.mktemp("admin")) as opened:
        yield opened


@pytest.fixture
async def http(stack: AdminStack) -> AsyncIterator[httpx.AsyncClient]:
    async with stack.client() as client:
        yield client


def cookie_of(response: httpx.Response, name: str) -> str:
    (header,) = [value for value in response.headers.get_list("set-cookie")
                 if value.startswith(f"{name}=")]
    return header


async def enrol(stack: AdminStack, subject: str) -> None:
    reply = await stack.http.post("/api/face/register", data={"id": subject},
                                  files={"file": ("obama.jpg", photo("train/obama/obama.jpg"))},
                                  headers=stack.auth)
    assert reply.status_code == 201, reply.text


async def test_an_admin_logs_in_sees_every_page_and_logs_out(
        stack: AdminStack, http: httpx.AsyncClient) -> None:
    away = await http.get("/admin")
    assert (away.status_code, away.headers["location"]) == (303, "/admin/login")
    form = await http.get("/admin/login")
    assert form.status_code == 200 and "text/html" in form.headers["content-type"]
    login_cookie = cookie_of(form, LOGIN_CSRF)
    assert "HttpOnly" in login_cookie and "SameSite=Strict" in login_cookie
    wrong = await http.post("/admin/login", data={
        "csrf": csrf_in(form.text), "username": stack.admin, "password": "not-it"})
    assert wrong.status_code == 401 and "Wrong admin name or password" in wrong.text
    landed = await http.post("/admin/login", data={
        "csrf": csrf_in(form.text), "username": stack.admin, "password": ADMIN_PASSWORD})
    assert (landed.status_code, landed.headers["location"]) == (303, "/admin")
    session = cookie_of(landed, SESSION)
    for attribute in ("HttpOnly", "SameSite=Strict", "Path=/admin"):
        assert attribute in session
    assert "Secure" not in session  # plain HTTP here; over https it is (test below)
    for path in PAGES:
        page = await http.get(path)
        assert page.status_code == 200, (path, page.text)
        policy = page.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
        # Nothing is loaded from anywhere: no URL with a scheme in the page at all.
        assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page.text), path
        assert stack.admin in page.text  # the logout button names who is logged in
    csrf = csrf_in((await http.get("/admin")).text)
    no_csrf = await http.post("/admin/logout", data={})
    assert no_csrf.status_code == 403
    out = await http.post("/admin/logout", data={"csrf": csrf})
    assert (out.status_code, out.headers["location"]) == (303, "/admin/login")
    assert "Max-Age=0" in cookie_of(out, SESSION)
    # The token itself was revoked, not only forgotten by this browser.
    token = session.split(";")[0].partition("=")[2]
    async with httpx.AsyncClient(base_url=stack.url) as stale:
        again = await stale.get("/admin", headers={"cookie": f"{SESSION}={token}"})
    assert again.status_code == 303
    assert (await http.get("/api/face", headers={"Authorization": f"Bearer {token}"})
            ).status_code == 401


def test_the_cookies_are_secure_over_https() -> None:
    """Served over https (behind a TLS proxy the bridge believes, uvicorn puts its scheme in
    the request), the cookies say Secure; over plain HTTP, only with MIRRORHUB_COOKIE_SECURE."""
    for scheme, setting, want in (("https", False, True), ("http", False, False),
                                  ("http", True, True)):
        request = Request({"type": "http", "scheme": scheme, "method": "GET", "path": "/admin",
                           "headers": [], "query_string": b"", "server": ("bridge", 443),
                           "state": {"cookie_secure": setting}})
        response = Response()
        set_cookie(request, response, SESSION, "token", 60)
        assert ("Secure" in response.headers["set-cookie"]) is want, (scheme, setting)


async def test_nobody_else_gets_in(stack: AdminStack, http: httpx.AsyncClient) -> None:
    await enrol(stack, "obama")
    user = await account(http)
    user_token = user.headers["Authorization"].removeprefix("Bearer ")
    # Nobody, a user's token, a token that is not one (an admin's, changed).
    for cookie in ("", f"{SESSION}={user_token}", f"{SESSION}={stack.token}x"):
        async with httpx.AsyncClient(base_url=stack.url, timeout=30,
                                     headers={"cookie": cookie} if cookie else {}) as other:
            for path in PAGES:
                page = await other.get(path)
                assert (page.status_code, page.headers.get("location")) == (
                    303, "/admin/login"), (path, cookie)
            stream = await other.get("/admin/events")
            assert stream.status_code == 401
            for path in ("/admin/faces/obama/delete", "/admin/logout"):
                post = await other.post(path, data={"csrf": "x"})
                assert post.status_code == 401, (path, cookie)
    # A logged-in admin's forms still want their CSRF token, and no other site's Origin.
    csrf = await stack.log_in(http)
    assert (await http.post("/admin/faces/obama/delete", data={})).status_code == 403
    assert (await http.post("/admin/faces/obama/delete", data={"csrf": "0" * 64})
            ).status_code == 403
    foreign = await http.post("/admin/faces/obama/delete", data={"csrf": csrf},
                              headers={"Origin": "https://evil.example"})
    assert foreign.status_code == 403
    form = await http.get("/admin/login")  # a logged-in admin is sent on
    assert form.status_code == 303
    async with httpx.AsyncClient(base_url=stack.url) as fresh:
        login_without = await fresh.post(
            "/admin/login", data={"username": stack.admin, "password": ADMIN_PASSWORD})
    assert login_without.status_code == 403  # no login CSRF token: no session
    assert SESSION not in login_without.headers.get("set-cookie", "")
    still = await http.get("/api/face/obama", headers=stack.auth)
    assert still.status_code == 200  # none of the refused deletes deleted anything
    deleted = await http.post("/admin/faces/obama/delete", data={"csrf": csrf},
                              follow_redirects=True)
    assert deleted.status_code == 200 and "Face obama deleted." in deleted.text
    assert (await http.get("/api/face/obama", headers=stack.auth)).status_code == 404


async def next_event(lines: AsyncIterator[str], kind: str) -> dict[str, str]:
    """The data of the next server-sent event of ``kind`` (others are skipped)."""
    current = ""
    async for line in lines:
        if line.startswith("event: "):
            current = line.removeprefix("event: ")
        elif line.startswith("data: ") and current == kind:
            data: dict[str, str] = json.loads(line.removeprefix("data: "))
            return data
    raise AssertionError(f"the stream ended before a {kind} event")


async def test_the_event_stream_tells_a_mirror_coming_online_and_ends_when_told(
        stack: AdminStack, http: httpx.AsyncClient) -> None:
    await stack.log_in(http)
    mirror = unique("hall")
    async with (http.stream("GET", "/admin/events") as stream,
                Bus(stack.backend.bus("test"), role="test") as device):
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        lines = stream.aiter_lines()
        await device.publish(MIRROR_WIDGETS, {"model_code": "MX-200"}, retain=True,
                             mirror_id=mirror)
        await device.publish(MIRROR_STATUS, "online", retain=True, mirror_id=mirror)
        async with asyncio.timeout(10):
            while True:
                row = await next_event(lines, "mirror")
                if mirror in row["html"] and "online" in row["html"]:
                    break
        assert "MX-200" in row["html"] and "nobody" in row["html"]
        assert stack.fleet.pages == 1
        # The page itself shows it now, rendered by the same macro.
        assert row["id"] in (await http.get("/admin")).text
        try:
            stack.fleet.stop()  # as the bridge stopping does: the stream says reload and ends
            async with asyncio.timeout(5):
                await next_event(lines, "reload")
        finally:
            stack.fleet.stopping = False  # the module's other tests go on with the bridge
    await asyncio.sleep(0.1)
    assert stack.fleet.pages == 0
    await device_clean(stack, mirror)


async def test_a_closed_page_lets_go_of_its_stream(
        stack: AdminStack, http: httpx.AsyncClient) -> None:
    await stack.log_in(http)
    async with http.stream("GET", "/admin/events") as stream:
        assert stream.status_code == 200
        await anext(stream.aiter_lines())
        assert stack.fleet.pages == 1
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    while stack.fleet.pages:
        assert loop.time() < deadline, "the closed stream still holds its queue"
        await asyncio.sleep(0.05)


async def device_clean(stack: AdminStack, mirror: str) -> None:
    """Leave no retained messages on a shared broker."""
    async with Bus(stack.backend.bus("test"), role="test") as device:
        for topic in (MIRROR_WIDGETS, MIRROR_STATUS):
            await device.publish(topic, b"", retain=True, mirror_id=mirror)


async def test_a_stopping_bridge_ends_its_open_streams(stack: AdminStack) -> None:
    """uvicorn waits for running responses before it stops; an event stream never ends by
    itself, so the bridge ends it (bridge/server.py calls the app's ``on_stop``)."""
    port = free_port()
    loop = asyncio.get_running_loop()
    async with (httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
                contextlib.AsyncExitStack() as streams):
        async with serving(create_app(stack.backend.bus("bridge")), "127.0.0.1", port):
            await stack.log_in(client)
            stream = await streams.enter_async_context(client.stream("GET", "/admin/events"))
            lines = stream.aiter_lines()
            await anext(lines)
            stopping = loop.time()
        assert loop.time() - stopping < 5
        async with asyncio.timeout(5):
            await next_event(lines, "reload")


async def test_with_auth_away_a_page_says_so_in_html(stack: AdminStack) -> None:
    """A bridge whose auth does not answer (another namespace: nobody there) cannot check a
    session: the page says why (504), it neither lets the admin in nor logs them out."""
    port = free_port()
    lonely = isolated(stack.backend)
    app = create_app(lonely.bus("bridge", request_timeout=0.5))
    async with (serving(app, "127.0.0.1", port),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}",
                                  headers={"cookie": f"{SESSION}={stack.token}"}) as client):
        page = await client.get("/admin")
        assert page.status_code == 504 and "text/html" in page.headers["content-type"]
        assert "The session cannot be checked now" in page.text
        assert SESSION not in page.headers.get("set-cookie", "")
