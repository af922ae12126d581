"""Seed 003's messages over HTTP: POST and GET /api/message, the same messages as seed 000's
/send_message, with attachments named by the sender's files and shown on the receiver's mirror."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from broker.client import Bus
from schemas.files import FileRef
from tests.bridge.user_api import Account, account, system, upload
from tests.conftest import Backend
from tests.services.messaging.test_screens import a_mirror, seen
from tests.support import unique

pytestmark = pytest.mark.usefixtures("bridge_url")

SENT = {"message": "message sent successfully"}
NO_FILE = {"message": "your file or format not found"}
BAD_KEY = {"message": "invalid type of name"}
NOT_SENT = {"message": "cant send message"}
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


async def send(http: httpx.AsyncClient, who: Account, **form: Any) -> httpx.Response:
    headers = {**who.headers, **form.pop("headers", {})}
    return await http.post("/api/message", data=form, headers=headers)


async def history(http: httpx.AsyncClient, who: Account, **query: Any) -> dict[str, Any]:
    reply = await http.get("/api/message", params=query, headers=who.headers)
    assert reply.status_code == 200, reply.text
    assert set(reply.json()) == {"message"}
    listed: dict[str, Any] = reply.json()["message"]
    return listed


async def test_a_message_with_an_attachment_is_listed_both_ways(
    http: httpx.AsyncClient,
) -> None:
    ann, bob = await account(http), await account(http)
    assert (await upload(http, ann, "photos", "beach.jpg", b"\xff\xd8\xff\xe0 jpeg")).json() \
        == {"message": "uploaded file successfully"}
    reply = await send(http, ann, text="look at this", file_type="photos",
                       file_name="beach.jpg", receiver=bob.name)
    assert (reply.status_code, reply.json()) == (200, SENT)

    mine = await history(http, ann)
    assert set(mine) == {"sent", "received", "next_before"}
    assert mine["received"] == [] and mine["next_before"] is None
    [message] = mine["sent"]
    assert set(message) == {"id", "sender", "receiver", "text", "file_type", "file_name",
                            "timestamp", "read"}
    assert (message["sender"], message["receiver"], message["text"]) == (
        ann.name, bob.name, "look at this")
    assert (message["file_type"], message["file_name"]) == ("photos", "beach.jpg")
    assert TIMESTAMP.fullmatch(message["timestamp"]) and message["read"] is False
    theirs = await history(http, bob)
    assert theirs["sent"] == [] and theirs["received"] == [message]
    # The same table as seed 000's messages.
    listed = (await http.get(f"/get_messages/{bob.name}")).json()["messages"]
    assert [(m["sender"], m["content"], m["id"]) for m in listed] == [
        (ann.name, "look at this", message["id"])]


async def test_without_receiver_or_file_it_is_a_plain_note_to_oneself(
    http: httpx.AsyncClient,
) -> None:
    ann = await account(http)
    assert (await send(http, ann, text="buy milk")).json() == SENT
    assert (await send(http, ann, text="and bread", file_type="", file_name="")).json() == SENT
    listed = await history(http, ann)
    assert [m["text"] for m in listed["sent"]] == ["and bread", "buy milk"]
    assert listed["received"] == listed["sent"]  # one message each, both sent and received
    assert all(m["receiver"] == ann.name and m["file_type"] is None and m["file_name"] is None
               for m in listed["sent"])


async def test_an_attachment_must_be_one_of_the_senders_files(http: httpx.AsyncClient) -> None:
    ann, bob = await account(http), await account(http)
    assert (await upload(http, bob, "photos", "bob.jpg", b"bob's")).status_code == 200
    for type_, name in (("photos", "nothing.jpg"), ("photos", "bob.jpg"), ("docs", "bob.jpg")):
        reply = await send(http, ann, text="hi", file_type=type_, file_name=name,
                           receiver=bob.name)
        assert (reply.status_code, reply.json()) == (404, NO_FILE)
    assert (await history(http, ann))["sent"] == []


@pytest.mark.parametrize(("file_type", "file_name"), [
    ("photos", None), (None, "beach.jpg"), ("photos", ""), ("Photos", "beach.jpg"),
    ("a b", "beach.jpg"), ("photos", "../beach.jpg"), ("photos", "/etc/passwd"),
    ("photos", "a\x00b"), ("photos", "x" * 256), ("x" * 33, "beach.jpg"),
])
async def test_a_malformed_type_or_name_is_refused(
    http: httpx.AsyncClient, file_type: str | None, file_name: str | None
) -> None:
    ann = await account(http)
    form = {k: v for k, v in (("file_type", file_type), ("file_name", file_name))
            if v is not None}
    reply = await send(http, ann, text="hi", **form)
    assert (reply.status_code, reply.json()) == (404, BAD_KEY)
    assert (await history(http, ann))["sent"] == []


async def test_an_unknown_receiver_and_bad_text_are_refused(http: httpx.AsyncClient) -> None:
    ann = await account(http)
    reply = await send(http, ann, text="hi", receiver=unique("ghost"))
    assert (reply.status_code, reply.json()) == (404, {"message": "receiver not found"})
    for text in (None, "", "   ", "x" * 2001):
        form = {} if text is None else {"text": text}
        reply = await send(http, ann, **form)
        assert reply.status_code == 400 and reply.json()["message"].startswith("text: ")
    reply = await send(http, ann, text="hi", receiver="bad\x01name")
    assert reply.status_code == 400 and reply.json()["message"].startswith("receiver: ")
    assert (await history(http, ann))["sent"] == []


async def test_an_idempotency_key_stores_a_message_once(http: httpx.AsyncClient) -> None:
    ann = await account(http)
    key = {"Idempotency-Key": unique("key")}
    for _ in range(2):
        assert (await send(http, ann, text="once", headers=key)).json() == SENT
    assert [m["text"] for m in (await history(http, ann))["sent"]] == ["once"]
    reply = await send(http, ann, text="another", headers=key)
    assert reply.status_code == 422


async def test_a_malformed_message_id_is_refused_beside_a_key_too(
    http: httpx.AsyncClient,
) -> None:
    """As /send_message: the header wins, but a message_id field that is none is a 400."""
    ann = await account(http)
    key = {"Idempotency-Key": unique("key")}
    for bad in ({}, "", "k" * 65):
        reply = await http.post("/api/message", json={"text": "hi", "message_id": bad},
                                headers={**ann.headers, **key})
        assert reply.status_code == 400, reply.text
        assert reply.json()["message"].startswith("message_id: ")
    assert (await history(http, ann))["sent"] == []


async def test_the_list_pages_back_through_both_ways(http: httpx.AsyncClient) -> None:
    ann, bob = await account(http), await account(http)
    for n in range(5):
        sender, receiver = (ann, bob) if n % 2 == 0 else (bob, ann)
        assert (await send(http, sender, text=f"m{n}", receiver=receiver.name)).json() == SENT
    pages, before = [], None
    while True:
        page = await history(http, ann, limit=2, **({"before": before} if before else {}))
        pages.append(([m["text"] for m in page["sent"]], [m["text"] for m in page["received"]]))
        before = page["next_before"]
        if before is None:
            break
    assert pages == [(["m4"], ["m3"]), (["m2"], ["m1"]), (["m0"], [])]
    reply = await http.get("/api/message", params={"limit": 0}, headers=ann.headers)
    assert reply.status_code == 400 and reply.json()["message"].startswith("limit: ")


async def test_both_message_endpoints_want_a_token(http: httpx.AsyncClient) -> None:
    for reply in (await http.post("/api/message", data={"text": "hi"}),
                  await http.get("/api/message")):
        assert (reply.status_code, reply.json()) == (401, {"msg": "Missing Authorization Header"})


async def test_a_message_not_stored_is_cant_send_message(backend: Backend, tmp_path: Path) -> None:
    async with (
        system(backend, tmp_path, messaging=False, request_timeout=1.0) as running,
        httpx.AsyncClient(base_url=running.url, timeout=15) as http,
    ):
        ann = await account(http)
        reply = await send(http, ann, text="is anybody there?")
        assert (reply.status_code, reply.json()) == (404, NOT_SENT)


async def test_a_message_shows_on_the_mirror_its_receiver_stands_at(
    http: httpx.AsyncClient, backend: Backend
) -> None:
    ann, bob = await account(http), await account(http)
    assert (await upload(http, ann, "photos", "beach.jpg", b"\xff\xd8\xff jpeg")).status_code \
        == 200
    async with Bus(backend.bus("test"), role="test") as bus:
        screen = await a_mirror(bus)
        await seen(bus, screen.mirror_id, bob.name)
        await screen.next(lambda d: d.user == bob.name)
        reply = await send(http, ann, text="from the beach", file_type="photos",
                           file_name="beach.jpg", receiver=bob.name)
        assert reply.json() == SENT
        shown = await screen.next(lambda d: bool(d.messages))
        [message] = shown.messages
        assert (message.sender, message.content) == (ann.name, "from the beach")
        assert message.attachment == FileRef(type="photos", name="beach.jpg")
