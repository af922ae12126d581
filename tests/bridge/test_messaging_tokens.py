"""Bearer tokens on the messaging endpoints: checked when sent, required where configured."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from bridge.app import create_app
from bridge.server import serving
from tests.bridge.test_messaging import register, send
from tests.conftest import Backend
from tests.support import free_port, unique

pytestmark = pytest.mark.usefixtures("bridge_url")


async def token_of(http: httpx.AsyncClient, name: str) -> str:
    reply = await http.post("/login", json={"username": name, "password": "pw-123"})
    token: str = reply.json()["token"]
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_a_token_must_be_the_senders_or_receivers(http: httpx.AsyncClient) -> None:
    ann, bob = await register(http), await register(http)
    token = bearer(await token_of(http, ann))
    assert (await send(http, ann, bob, "hi", **token)).json()["result"] == "success"

    as_bob = await send(http, bob, ann, "forged", **token)
    assert as_bob.status_code == 403
    assert as_bob.json() | {"message": ""} == {
        "result": "fail", "type": "message_sent", "message": "", "field": "sender_username"}
    assert (await http.get(f"/get_messages/{bob}", headers=token)).status_code == 403
    mine = await http.get(f"/get_messages/{ann}", headers=token)
    assert mine.status_code == 200 and mine.json()["messages"] == []

    layout = {"model_code": "tok-1", "index": '{"time": [1, 1]}', "username": bob}
    assert (await http.post("/widgets_custom", json=layout, headers=token)).status_code == 403
    forged = await http.get(f"/get_messages/{bob}")  # no token: as the documented API has it
    assert [m["content"] for m in forged.json()["messages"]] == ["hi"]


async def test_the_acting_user_is_compared_in_the_stored_form(http: httpx.AsyncClient) -> None:
    jose = await register(http, f"Jose\u0301-{unique()}")  # stored composed: José
    bob = await register(http)
    token = bearer(await token_of(http, jose))
    spelt_otherwise = f"  {jose}  "  # decomposed, with spaces: the same user
    assert (await send(http, spelt_otherwise, bob, "hi", **token)).json()["result"] == "success"
    # A sender that is no username at all is bad input (400), not somebody else (403).
    reply = await send(http, "jose\x01", bob, "hi", **token)
    assert (reply.status_code, reply.json()["field"]) == (400, "sender_username")


async def test_a_bad_token_is_a_401(http: httpx.AsyncClient) -> None:
    ann = await register(http)
    for header in ({"Authorization": "Bearer not-a-jwt"}, {"Authorization": "Basic abc"}):
        reply = await send(http, ann, ann, "hi", **header)
        assert reply.status_code == 401 and reply.json()["type"] == "message_sent"


@pytest.fixture
async def strict_bridge(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    port = free_port()
    app = create_app(backend.bus("bridge"), require_token=True)
    async with serving(app, "127.0.0.1", port), httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}", timeout=15
    ) as client:
        yield client


async def test_where_tokens_are_required_none_is_a_401(
    http: httpx.AsyncClient, strict_bridge: httpx.AsyncClient
) -> None:
    ann, bob = await register(http), await register(http)
    assert (await send(strict_bridge, ann, bob, "hi")).status_code == 401
    assert (await strict_bridge.get(f"/get_messages/{bob}")).status_code == 401
    token = bearer(await token_of(http, ann))
    assert (await send(strict_bridge, ann, bob, "hi", **token)).json()["result"] == "success"
