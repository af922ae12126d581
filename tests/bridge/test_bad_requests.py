"""Requests a black-box probe sent to the bridge: each gets a documented JSON reply, never a 500,
an empty redirect or a hang."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.routing import Route

from bridge import messaging_api, mirror_api
from bridge.forms import MAX_JSON_DEPTH
from schemas.messaging import MESSAGE_ID_MAX
from tests.support import unique

pytestmark = pytest.mark.usefixtures("bridge_url")

# Endpoints that read no fields (the bearer token is all /whoami looks at).
BODYLESS = {"/whoami"}


def endpoints() -> list[tuple[str, str]]:
    """(method, path) of every route that reads fields, path parameters filled in."""
    found = []
    for route in [*mirror_api.routes, *messaging_api.routes]:
        assert isinstance(route, Route) and route.methods
        if route.path in BODYLESS:
            continue
        path = route.path.replace("{receiver_username}", "ann")
        found += [(method, path) for method in sorted(route.methods - {"HEAD"})]
    return found


@pytest.mark.parametrize("depth", [30_000, 900, MAX_JSON_DEPTH + 1])
async def test_deeply_nested_json_is_a_400_on_every_endpoint(
    http: httpx.AsyncClient, depth: int
) -> None:
    nested = '{"username": ' + "[" * depth + "]" * depth + "}"
    for method, path in endpoints():
        reply = await http.request(method, path, content=nested,
                                   headers={"content-type": "application/json"})
        body = reply.json()
        assert reply.status_code == 400, (method, path, body)
        assert body["result"] == "fail" and body["type"] not in ("http", None), (path, body)
        assert f"nested deeper than {MAX_JSON_DEPTH} levels" in body["message"], (path, body)


async def test_nesting_within_the_limit_reaches_validation(http: httpx.AsyncClient) -> None:
    nested = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    reply = await http.post("/login", content=f'{{"username": {nested}, "password": "x"}}',
                            headers={"content-type": "application/json"})
    assert reply.status_code == 400 and reply.json()["field"] == "username", reply.text


async def test_a_deeply_nested_layout_text_is_a_400_naming_index(http: httpx.AsyncClient) -> None:
    deep = "[" * 2000 + "]" * 2000  # within the 4096 characters a layout's text may have
    reply = await http.post("/widgets_custom", data={"model_code": "MX-1", "index": deep})
    body = reply.json()
    assert reply.status_code == 400 and body["field"] == "index", body
    assert (body["result"], body["type"]) == ("fail", "widget_custom")


async def test_before_out_of_range_is_a_400_naming_it(http: httpx.AsyncClient) -> None:
    name = unique()
    form = {"username": name, "password": "pw", "email": "b@example.com"}
    assert (await http.post("/register/user", data=form)).json()["result"] == "success"
    for before in (MESSAGE_ID_MAX + 1, 2**63, 2**64, 0):
        reply = await http.get(f"/get_messages/{name}", params={"before": before})
        body = reply.json()
        assert reply.status_code == 400, (before, body)
        assert (body["result"], body["type"], body["field"]) == (
            "fail", "messages_retrieved", "before")
    reply = await http.get(f"/get_messages/{name}", params={"before": MESSAGE_ID_MAX})
    assert reply.json() == {"result": "success", "type": "messages_retrieved", "messages": [],
                            "next_before": None}


@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/login/"), ("GET", "/get_messages/ann/"), ("POST", "/register/user/"),
     ("GET", "/face/")],
)
async def test_a_trailing_slash_is_a_json_404_not_an_empty_redirect(
    http: httpx.AsyncClient, method: str, path: str
) -> None:
    reply = await http.request(method, path, data={"username": "ann", "password": "pw"})
    assert reply.status_code == 404, reply.headers
    body = reply.json()
    assert (body["result"], body["type"]) == ("fail", "http")
    assert f"paths take no trailing slash ({path.rstrip('/')})" in body["message"]


async def test_a_control_character_in_a_header_gets_uvicorns_plain_400(
    http: httpx.AsyncClient, bridge_url: str
) -> None:
    """uvicorn refuses the request before the app sees it, in plain text (documented); the
    bridge goes on serving."""
    address = urlsplit(bridge_url)
    assert address.hostname is not None and address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        writer.write(b"GET /whoami HTTP/1.1\r\nHost: x\r\nX-Probe: a\x01b\r\n\r\n")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()
        await writer.wait_closed()
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"content-type: text/plain" in answer.lower()
    assert (await http.get("/whoami")).status_code == 401  # still serving
