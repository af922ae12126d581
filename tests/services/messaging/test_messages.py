"""Sending and listing messages over the bus: users checked with auth, sends idempotent."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from broker.client import Bus
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from schemas.messaging import (
    MESSAGING_LIST,
    MESSAGING_SEND,
    MessagesRequest,
    MessagingError,
    SendRequest,
)
from services.messaging.service import run_messaging
from tests.conftest import (
    Backend,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
)
from tests.services.messaging.conftest import register
from tests.support import unique

TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")


def send(sender: str, receiver: str, content: str, **extra: str) -> SendRequest:
    return SendRequest(sender_username=sender, receiver_username=receiver, content=content,
                       **extra)


async def test_send_then_list_newest_first(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    for text in ("one", "two", "три ☃"):
        reply = await bus.request(MESSAGING_SEND, send(ann, bob, text), qos=1)
        assert TIMESTAMP.match(reply.timestamp)
        assert not reply.duplicate
    listed = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=bob))
    assert [m.content for m in listed.messages] == ["три ☃", "two", "one"]
    assert {m.sender for m in listed.messages} == {ann}
    assert all(TIMESTAMP.match(m.timestamp) and not m.read for m in listed.messages)
    assert listed.next_before is None
    nothing = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=ann))
    assert nothing.messages == []


async def test_paging_covers_every_message_once(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    for i in range(7):
        await bus.request(MESSAGING_SEND, send(ann, bob, f"m{i}"), qos=1)
    seen: list[str] = []
    before = None
    while True:
        page = await bus.request(MESSAGING_LIST, MessagesRequest(
            receiver_username=bob, limit=3, before=before))
        seen += [m.content for m in page.messages]
        assert len(page.messages) <= 3
        if page.next_before is None:
            break
        before = page.next_before
    assert seen == [f"m{i}" for i in reversed(range(7))]


async def test_unknown_users_are_named(bus: Bus) -> None:
    ann = await register(bus, "ann")
    ghost = unique("ghost")
    with pytest.raises(ServiceError) as caught:
        await bus.request(MESSAGING_SEND, send(ghost, ann, "hi"), qos=1)
    assert caught.value.code == MessagingError.SENDER_NOT_FOUND
    assert ghost in caught.value.message and caught.value.field == "sender_username"
    with pytest.raises(ServiceError) as caught:
        await bus.request(MESSAGING_SEND, send(ann, ghost, "hi"), qos=1)
    assert caught.value.code == MessagingError.RECEIVER_NOT_FOUND
    with pytest.raises(ServiceError) as caught:
        await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=ghost))
    assert (caught.value.code, caught.value.message) == (MessagingError.USER_NOT_FOUND,
                                                         "Not Found User")


@pytest.mark.parametrize(("content", "field"), [("", "content"), ("   ", "content"),
                                                ("x" * 2001, "content")])
async def test_bad_content_is_refused(bus: Bus, content: str, field: str) -> None:
    ann = await register(bus, "ann")
    body = {"sender_username": ann, "receiver_username": ann, "content": content}
    with pytest.raises(ServiceError) as caught:
        await bus.request_raw(MESSAGING_SEND, body, qos=1)
    assert (caught.value.code, caught.value.field) == (ErrorCode.INVALID, field)


async def test_a_repeated_send_is_stored_once(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    key = unique("key")
    first = await bus.request(MESSAGING_SEND, send(ann, bob, "once", message_id=key), qos=1)
    again = await bus.request(MESSAGING_SEND, send(ann, bob, "once", message_id=key), qos=1)
    assert (again.message_id, again.timestamp, again.duplicate) == (key, first.timestamp, True)
    listed = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=bob))
    assert [m.content for m in listed.messages] == ["once"]
    with pytest.raises(ServiceError) as caught:
        await bus.request(MESSAGING_SEND, send(ann, bob, "other", message_id=key), qos=1)
    assert caught.value.code == MessagingError.DUPLICATE_ID


async def test_garbage_does_not_stop_the_service(bus: Bus) -> None:
    ann = await register(bus, "ann")
    for payload in (b"\xff\xfe not json", b"[]", b'{"id": 1}', b"{" * 10_000):
        await bus.publish(MESSAGING_SEND, payload, qos=1)
    reply = await bus.request(MESSAGING_SEND, send(ann, ann, "still here"), qos=1)
    assert not reply.duplicate


async def test_auth_down_means_unavailable_not_unknown(backend: Backend, tmp_path: Path) -> None:
    alone = isolated(backend)  # a namespace where no auth service answers
    url = await create_database(alone, "messaging")
    try:
        async with (
            run_messaging(alone.bus("messaging", request_timeout=0.5),
                          messaging_settings(tmp_path, url)),
            Bus(alone.bus("test"), role="test") as client,
        ):
            with pytest.raises(ServiceError) as caught:
                await client.request(MESSAGING_SEND, send("ann", "bob", "hi"), qos=1)
            assert caught.value.code == ErrorCode.UNAVAILABLE
            assert "auth" in caught.value.message
    finally:
        await drop_database(url)


def test_settings_bound_the_times(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from schemas.errors import ConfigError
    from services.messaging.config import MessagingSettings

    monkeypatch.setenv("MIRRORHUB_IDLE_AFTER", "2.5")
    monkeypatch.setenv("MIRRORHUB_PRESENCE_HOLD", "0")
    settings = MessagingSettings.from_env(tmp_path)
    assert (settings.idle_after, settings.hold) == (2.5, 0.0)
    assert settings.database_url == f"sqlite://{tmp_path / 'messaging.sqlite3'}"
    for bad in ("soon", "-1", "0"):
        monkeypatch.setenv("MIRRORHUB_IDLE_AFTER", bad)
        with pytest.raises(ConfigError, match="MIRRORHUB_IDLE_AFTER"):
            MessagingSettings.from_env(tmp_path)
    assert replace(settings, instance="x").instance == "x"
