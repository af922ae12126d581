"""Messages and widget layouts, HTTP -> bridge -> MQTT -> messaging service -> database."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from bridge.app import create_app
from bridge.server import serving
from tests.conftest import Backend, isolated
from tests.support import free_port, unique

pytestmark = pytest.mark.usefixtures("bridge_url")

TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")
DOC_EXAMPLE = "{'weather' : [1, 1], 'time' : [1, 2]}"


async def register(http: httpx.AsyncClient, name: str | None = None) -> str:
    name = name or unique()
    reply = await http.post("/register/user", json={
        "username": name, "password": "pw-123", "email": "someone@example.com"})
    assert reply.json() == {"result": "success", "type": "register_user"}, reply.text
    return name


async def send(
    http: httpx.AsyncClient, sender: str, receiver: str, content: str, **headers: str
) -> httpx.Response:
    return await http.post("/send_message", headers=headers, json={
        "sender_username": sender, "receiver_username": receiver, "content": content})


async def inbox(http: httpx.AsyncClient, receiver: str, **query: Any) -> dict[str, Any]:
    reply = await http.get(f"/get_messages/{receiver}", params=query)
    assert reply.status_code == 200, reply.text
    body: dict[str, Any] = reply.json()
    return body


# -- messages --------------------------------------------------------------------------------


async def test_send_then_get_has_the_documented_shapes(http: httpx.AsyncClient) -> None:
    ann, bob = await register(http), await register(http)
    before = datetime.now(UTC).replace(microsecond=0)
    reply = await http.post("/send_message", data={
        "sender_username": ann, "receiver_username": bob, "content": "hello"})
    assert reply.status_code == 200
    sent = reply.json()
    assert set(sent) == {"result", "type", "message", "message_id", "timestamp"}
    assert sent["result"] == "success" and sent["type"] == "message_sent"
    assert sent["message"] == "Message sent"
    assert re.fullmatch(r"[0-9a-f]{32}", sent["message_id"])
    assert TIMESTAMP.fullmatch(sent["timestamp"])
    stamped = datetime.strptime(sent["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)

    body = await inbox(http, bob)
    assert set(body) == {"result", "type", "messages", "next_before"}
    assert body["result"] == "success" and body["type"] == "messages_retrieved"
    assert body["next_before"] is None
    [message] = body["messages"]
    assert set(message) == {"sender", "content", "timestamp", "id", "read"}
    assert message["sender"] == ann and message["content"] == "hello"
    assert message["timestamp"] == sent["timestamp"]
    assert isinstance(message["id"], int) and isinstance(message["read"], bool)
    assert (await inbox(http, ann))["messages"] == []  # the sender's inbox is untouched


async def test_newest_first_and_paging_covers_every_message_once(
    http: httpx.AsyncClient,
) -> None:
    ann, bob = await register(http), await register(http)
    for n in range(7):
        assert (await send(http, ann, bob, f"message {n}")).json()["result"] == "success"
    everything = (await inbox(http, bob))["messages"]
    assert [m["content"] for m in everything] == [f"message {n}" for n in reversed(range(7))]
    assert [m["timestamp"] for m in everything] == sorted(
        (m["timestamp"] for m in everything), reverse=True)

    seen: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": 3}
    while True:
        page = await inbox(http, bob, **query)
        assert len(page["messages"]) <= 3
        seen += page["messages"]
        if page["next_before"] is None:
            break
        query["before"] = page["next_before"]
    assert [m["id"] for m in seen] == [m["id"] for m in everything]


@pytest.mark.parametrize("unknown", ["sender", "receiver"])
async def test_unknown_sender_or_receiver_is_named(
    http: httpx.AsyncClient, unknown: str
) -> None:
    known = await register(http)
    ghost = unique("ghost")
    sender, receiver = (ghost, known) if unknown == "sender" else (known, ghost)
    reply = await send(http, sender, receiver, "anyone there?")
    assert reply.status_code == 200
    body = reply.json()
    assert body["result"] == "fail" and body["type"] == "message_sent"
    assert body["message"].startswith(f"Not Found {unknown.title()}")
    assert body["field"] == f"{unknown}_username"
    assert (await inbox(http, known))["messages"] == []


@pytest.mark.parametrize(("field", "value"), [
    ("content", ""), ("content", "   "), ("content", "x" * 2001), ("content", None),
    ("sender_username", None), ("receiver_username", ""), ("sender_username", 42),
])
async def test_bad_send_fields_are_a_400_naming_them(
    http: httpx.AsyncClient, field: str, value: object
) -> None:
    fields: dict[str, object] = {"sender_username": "ann", "receiver_username": "bob",
                                 "content": "hi", field: value}
    if value is None:
        del fields[field]
    reply = await http.post("/send_message", json=fields)
    assert reply.status_code == 400
    body = reply.json()
    assert body["result"] == "fail" and body["type"] == "message_sent"
    assert body["field"] == field and field in body["message"]


async def test_unicode_content_is_preserved(http: httpx.AsyncClient) -> None:
    ann, bob = await register(http), await register(http)
    content = "Zoë 🪞 用户 — \"quoted\" 'single'\nline two\t; DROP TABLE messages;--"
    longest = "ü" * 2000
    assert (await send(http, ann, bob, content)).json()["result"] == "success"
    assert (await send(http, ann, bob, longest)).json()["result"] == "success"
    messages = (await inbox(http, bob))["messages"]
    assert [m["content"] for m in messages] == [longest, content]


async def test_same_idempotency_key_stores_once(http: httpx.AsyncClient) -> None:
    ann, bob = await register(http), await register(http)
    key = unique("key")
    first = await send(http, ann, bob, "once", **{"Idempotency-Key": key})
    again = await send(http, ann, bob, "once", **{"Idempotency-Key": key})
    assert first.json()["result"] == again.json()["result"] == "success"
    assert first.json()["message_id"] == again.json()["message_id"] == key
    # the key may also come as a field
    fields = {"sender_username": ann, "receiver_username": bob, "content": "field",
              "message_id": "m-1"}
    for _ in range(2):
        reply = await http.post("/send_message", json=fields)
        assert reply.json()["message_id"] == "m-1"
    assert [m["content"] for m in (await inbox(http, bob))["messages"]] == ["field", "once"]
    # the same key for a different message is refused, and stores nothing
    other = await send(http, ann, bob, "not once", **{"Idempotency-Key": key})
    assert other.status_code == 422
    assert other.json()["type"] == "message_sent" and other.json()["field"] == "message_id"
    assert len((await inbox(http, bob))["messages"]) == 2


async def test_a_malformed_message_id_is_refused_beside_a_key_too(
    http: httpx.AsyncClient,
) -> None:
    """The header wins over the field, but a field that is no message id is a 400 naming it,
    not dropped unseen (schemathesis sent ``"message_id": {}`` beside a key)."""
    ann, bob = await register(http), await register(http)
    for bad, why in (({}, "Input should be a valid string"), ("", "at least 1 character"),
                     ("k" * 65, "at most 64 characters")):
        reply = await http.post("/send_message", headers={"Idempotency-Key": unique("key")},
                                json={"sender_username": ann, "receiver_username": bob,
                                      "content": "hi", "message_id": bad})
        assert reply.status_code == 400, reply.text
        assert reply.json()["field"] == "message_id" and why in reply.json()["message"]
    assert (await inbox(http, bob))["messages"] == []


async def test_get_messages_of_unknown_user_and_bad_paging(http: httpx.AsyncClient) -> None:
    unknown = await http.get(f"/get_messages/{unique('ghost')}")
    assert unknown.status_code == 200
    assert unknown.json() == {"result": "fail", "type": "messages_retrieved",
                              "message": "Not Found User", "field": "receiver_username"}
    bob = await register(http)
    cases: list[tuple[dict[str, int | str], str]] = [
        ({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"limit": "many"}, "limit"),
        ({"before": 0}, "before"), ({"before": "x"}, "before"),
    ]
    for query, field in cases:
        reply = await http.get(f"/get_messages/{bob}", params=query)
        assert reply.status_code == 400, query
        assert reply.json()["type"] == "messages_retrieved" and reply.json()["field"] == field
    assert (await http.post(f"/get_messages/{bob}")).status_code == 405


@pytest.mark.parametrize("name", [
    "Zoë-Ångström", "用户名", "🪞mirror", "robert'); DROP TABLE users;--", "a\" OR \"1\"=\"1",
])
async def test_unicode_and_sql_looking_usernames(http: httpx.AsyncClient, name: str) -> None:
    odd = await register(http, f"{name}{unique('')}"[:64])
    other = await register(http)
    assert (await send(http, other, odd, "to you")).json()["result"] == "success"
    assert (await send(http, odd, other, "from you")).json()["result"] == "success"
    [received] = (await inbox(http, odd))["messages"]
    [sent] = (await inbox(http, other))["messages"]
    assert (received["sender"], received["content"]) == (other, "to you")
    assert (sent["sender"], sent["content"]) == (odd, "from you")
    model = unique("model")
    own = await http.post("/widgets_custom", json={
        "model_code": model, "index": {"quote": [2, 2]}, "username": odd})
    assert own.json()["message"] == "New Widget"
    got = await http.get("/get_widgets_custom", params={"model_code": model, "username": odd})
    assert got.json()["index"] == {"quote": [2, 2]}


@pytest.fixture
async def deaf_bridge(backend: Backend) -> AsyncIterator[httpx.AsyncClient]:
    """A bridge on a namespace of its own, where no messaging service listens."""
    port = free_port()
    settings = isolated(backend).bus("bridge", request_timeout=0.5)
    async with (
        serving(create_app(settings), "127.0.0.1", port),
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=15) as client,
    ):
        yield client


async def test_no_answer_in_time_is_a_503_saying_not_sent(
    deaf_bridge: httpx.AsyncClient,
) -> None:
    reply = await send(deaf_bridge, "ann", "bob", "hello?")
    assert reply.status_code == 503
    body = reply.json()
    assert body["result"] == "fail" and body["type"] == "message_sent"
    assert "NOT sent" in body["message"] and "messaging service" in body["message"]


# -- widget layouts --------------------------------------------------------------------------


async def get_layout(http: httpx.AsyncClient, model: str, **query: str) -> httpx.Response:
    return await http.get("/get_widgets_custom", params={"model_code": model, **query})


async def test_the_documents_example_creates_then_updates(http: httpx.AsyncClient) -> None:
    model = unique("model")
    first = await http.post("/widgets_custom", json={"model_code": model, "index": DOC_EXAMPLE})
    assert first.status_code == 200
    assert first.json() == {"result": "success", "type": "widget_custom",
                            "message": "New Widget"}
    again = await http.post("/widgets_custom", data={"model_code": model, "index": DOC_EXAMPLE})
    assert again.json() == {"result": "success", "type": "widget_custom",
                            "message": "Update Widget"}
    got = await get_layout(http, model)
    assert got.status_code == 200
    body = got.json()
    assert set(body) == {"result", "type", "message", "index", "scope"}
    assert body["result"] == "success" and body["type"] == "get_widget_custom"
    assert body["index"] == {"weather": [1, 1], "time": [1, 2]}
    assert isinstance(body["message"], str)
    assert json.loads(body["message"]) == body["index"]
    assert body["scope"] == "model"


async def test_json_text_and_objects_are_layouts_too(http: httpx.AsyncClient) -> None:
    model = unique("model")
    text = '{"calendar": [1, 3], "news": [2, 1]}'
    created = await http.post("/widgets_custom", data={"model_code": model, "index": text})
    assert created.json()["message"] == "New Widget"
    assert (await get_layout(http, model)).json()["index"] == {"calendar": [1, 3],
                                                               "news": [2, 1]}
    updated = await http.post("/widgets_custom", json={"model_code": model,
                                                       "index": {"todo": [3, 3]}})
    assert updated.json()["message"] == "Update Widget"
    assert (await get_layout(http, model)).json()["message"] == '{"todo": [3, 3]}'


async def test_a_users_layout_overrides_the_models_for_them_only(
    http: httpx.AsyncClient,
) -> None:
    model, ann, bob = unique("model"), await register(http), await register(http)
    await http.post("/widgets_custom", json={"model_code": model, "index": DOC_EXAMPLE})
    own = await http.post("/widgets_custom", json={
        "model_code": model, "index": "{'music': [4, 4]}", "username": ann})
    assert own.json()["message"] == "New Widget"
    mine = (await get_layout(http, model, username=ann)).json()
    assert (mine["index"], mine["scope"]) == ({"music": [4, 4]}, "user")
    theirs = (await get_layout(http, model, username=bob)).json()
    assert (theirs["index"], theirs["scope"]) == ({"weather": [1, 1], "time": [1, 2]}, "model")
    assert (await get_layout(http, model)).json()["scope"] == "model"


async def test_nothing_stored_is_not_found_widget(http: httpx.AsyncClient) -> None:
    reply = await get_layout(http, unique("model"))
    assert reply.status_code == 200
    assert reply.json() == {"result": "fail", "type": "get_widget_custom",
                            "message": "Not Found Widget", "field": "model_code"}


@pytest.mark.parametrize("index", [
    "{'clock': [1, 1]}",  # unknown widget
    "{'time': [1, 1], 'date': [1, 1]}",  # two widgets in one cell
    "{'time': [0, 1]}",
    "{'time': [1]}",
    "{'time': 'x'}",
    "x",
    "__import__('os').system('true')",
    "",
])
async def test_bad_layouts_are_a_400_and_store_nothing(
    http: httpx.AsyncClient, index: str
) -> None:
    fresh, kept = unique("model"), unique("model")
    await http.post("/widgets_custom", json={"model_code": kept, "index": "{'time': [1, 1]}"})
    for model in (fresh, kept):
        reply = await http.post("/widgets_custom", json={"model_code": model, "index": index})
        assert reply.status_code == 400, reply.text
        body = reply.json()
        assert body["result"] == "fail" and body["type"] == "widget_custom"
        assert body["field"] == "index" and body["message"].startswith("index")
    assert (await get_layout(http, fresh)).json()["message"] == "Not Found Widget"
    assert (await get_layout(http, kept)).json()["index"] == {"time": [1, 1]}


async def test_missing_layout_fields_are_a_400(http: httpx.AsyncClient) -> None:
    for fields, field in [({"index": DOC_EXAMPLE}, "model_code"),
                          ({"model_code": unique("model")}, "index")]:
        reply = await http.post("/widgets_custom", json=fields)
        assert reply.status_code == 400
        assert reply.json()["type"] == "widget_custom" and reply.json()["field"] == field
    got = await http.get("/get_widgets_custom")
    assert got.status_code == 400
    assert got.json()["type"] == "get_widget_custom" and got.json()["field"] == "model_code"
