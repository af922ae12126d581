"""A deleted account's messages and layouts leave the messaging service, live or caught up after
it was down; a renamed account's move to the new name. Over the real bus and databases."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from broker.client import Bus
from broker.service import persistent_client_id
from broker.settings import BusSettings
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_LOGIN,
    AUTH_REGISTER,
    AUTH_USER_RENAMED,
    DeleteUserRequest,
    LoginRequest,
    RegisterRequest,
    UserRenamed,
)
from schemas.errors import ServiceError
from schemas.messaging import (
    MESSAGING_GET_LAYOUT,
    MESSAGING_LIST,
    MESSAGING_SEND,
    MESSAGING_SET_LAYOUT,
    GetLayoutRequest,
    MessagesRequest,
    MessagingError,
    SendRequest,
    SetLayoutRequest,
)
from services.auth.service import run_auth
from services.messaging.models import DeletionCursor, Message
from services.messaging.service import run_messaging
from tests.conftest import (
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
    messaging_settings,
)
from tests.services.messaging.conftest import register
from tests.services.messaging.test_screens import a_mirror, seen
from tests.support import unique

LAYOUT = {"calendar": [1, 1], "messages": [1, 2]}


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 1.0) -> None:
    """Wait until ``check()`` holds, failing after ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not await check():
        assert loop.time() < deadline, f"not so within {within} s"
        await asyncio.sleep(0.02)


async def delete(bus: Bus, name: str) -> None:
    token = (await bus.request(AUTH_LOGIN, LoginRequest(username=name, password="pw"))).token
    await bus.request(AUTH_DELETE_USER, DeleteUserRequest(token=token))


async def send(bus: Bus, sender: str, receiver: str, content: str) -> None:
    await bus.request(MESSAGING_SEND, SendRequest(sender_username=sender,
                      receiver_username=receiver, content=content), qos=1)


async def conversation(bus: Bus, ann: str, bob: str, model: str) -> None:
    """Messages both ways between ann and bob, and ann's own layout on ``model``."""
    await send(bus, bob, ann, "hi ann")
    await send(bus, ann, bob, "hi bob")
    await bus.request(MESSAGING_SET_LAYOUT,
                      SetLayoutRequest(model_code=model, index=LAYOUT, username=ann))


async def inbox(bus: Bus, name: str) -> list[tuple[str, str]]:
    listed = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=name))
    return [(m.sender, m.content) for m in listed.messages]


async def has_layout(bus: Bus, model: str, name: str) -> bool:
    try:
        reply = await bus.request(MESSAGING_GET_LAYOUT,
                                  GetLayoutRequest(model_code=model, username=name))
    except ServiceError as exc:
        assert exc.code == MessagingError.LAYOUT_NOT_FOUND
        return False
    return reply.scope == "user"


async def test_a_deleted_users_messages_layouts_and_display_go_at_once(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    model = unique("model")  # no model layout: only ann's own
    await conversation(bus, ann, bob, model)
    screen, bobs = await a_mirror(bus, model), await a_mirror(bus)
    await seen(bus, screen.mirror_id, ann)
    await seen(bus, bobs.mirror_id, bob)
    shown = await screen.next(lambda d: d.user == ann and d.unlocked)
    assert [m.content for m in shown.messages] == ["hi ann"]
    from_ann = await bobs.next(lambda d: d.user == bob and d.unlocked)
    assert [(m.sender, m.content) for m in from_ann.messages] == [(ann, "hi bob")]

    await seen(bus, bobs.mirror_id, bob)  # still there: no new display, no idling soon
    await delete(bus, ann)

    await eventually(lambda: _no_messages_of(bus, bob, ann))
    # The service forgets messages, then layouts, one after the other: wait for both.
    await eventually(lambda: _not(has_layout(bus, model, ann)))
    idle = await screen.next(lambda d: d.at > shown.at, timeout=1.0)
    assert (idle.state, idle.user, idle.messages) == ("idle", None, [])
    # bob still stands at his mirror: its display is sent again, without ann's message.
    without = await bobs.next(lambda d: d.at > from_ann.at, timeout=1.0)
    assert (without.user, without.unlocked, without.messages) == (bob, True, [])
    with pytest.raises(ServiceError) as caught:  # the name no longer passes for an account
        await send(bus, bob, ann, "are you there?")
    assert caught.value.code == MessagingError.RECEIVER_NOT_FOUND

    # A vision worker that has not heard of the deletion yet (or a frame analysed before it)
    # still names her: nobody is shown.
    screen.forget()
    await seen(bus, screen.mirror_id, ann)
    await asyncio.sleep(0.5)
    assert screen.displays == []
    # Somebody registers the name anew (and enrols their own face): they are shown.
    await bus.request(AUTH_REGISTER, RegisterRequest(username=ann, password="pw",
                                                     email=f"{ann}@example.com"))
    async with asyncio.timeout(10):  # auth is asked again within 5 s of the last time
        while not any(d.user == ann for d in screen.displays):
            await seen(bus, screen.mirror_id, ann)
            await asyncio.sleep(0.25)


async def _not(check: Awaitable[bool]) -> bool:
    return not await check


async def _no_messages_of(bus: Bus, owner: str, gone: str) -> bool:
    return all(gone not in pair for pair in await inbox(bus, owner))


async def test_a_renamed_users_messages_and_layouts_move(bus: Bus, backend: Backend) -> None:
    ann, anna, bob = [await register(bus, name) for name in ("ann", "anna", "bob")]
    model = unique("model")
    await conversation(bus, ann, bob, model)
    # A layout left under the new name (an earlier account of that name): ann's wins.
    await bus.request(MESSAGING_SET_LAYOUT, SetLayoutRequest(
        model_code=model, index={"time": [1, 1]}, username=anna))
    screen, bobs = await a_mirror(bus, model), await a_mirror(bus)
    await seen(bus, screen.mirror_id, ann)
    await seen(bus, bobs.mirror_id, bob)
    shown = await screen.next(lambda d: d.user == ann)
    from_ann = await bobs.next(lambda d: d.user == bob and bool(d.messages))

    await seen(bus, bobs.mirror_id, bob)
    async with Bus(backend.bus("auth"), role="auth") as auth:
        renamed = UserRenamed(user_id=1, old_username=ann, new_username=anna)
        for _ in range(2):  # a redelivery changes nothing
            await auth.publish(AUTH_USER_RENAMED, renamed)

            async def moved() -> bool:
                return await inbox(bus, anna) == [(bob, "hi ann")]

            await eventually(moved)
            assert await inbox(bus, bob) == [(anna, "hi bob")]
            assert await inbox(bus, ann) == []
            got = await bus.request(MESSAGING_GET_LAYOUT,
                                    GetLayoutRequest(model_code=model, username=anna))
            assert got.index == {k: tuple(v) for k, v in LAYOUT.items()}
            assert not await has_layout(bus, model, ann)
    # The mirror showing ann went idle: the next frame recognises her as anna.
    idle = await screen.next(lambda d: d.at > shown.at, timeout=1.0)
    assert (idle.state, idle.user) == ("idle", None)
    # bob's mirror shows her message under her new name.
    again = await bobs.next(lambda d: d.at > from_ann.at, timeout=1.0)
    assert [(m.sender, m.content) for m in again.messages] == [(anna, "hi bob")]


@contextlib.asynccontextmanager
async def private_auth(backend: Backend, tmp_path: Path, url: str) -> AsyncIterator[None]:
    async with run_auth(backend.bus("auth"), auth_settings(tmp_path, url, None)):
        yield


async def test_a_service_that_was_down_catches_up_when_auth_is_back(
    backend: Backend, tmp_path: Path
) -> None:
    """messaging is stopped, ann is deleted, auth goes down too, and the broker forgets
    messaging's persistent session (so the event it kept there cannot help); messaging starts
    again and removes ann's data once auth answers."""
    own = isolated(backend)
    auth_url = await create_database(own, "auth")
    messaging_url = await create_database(own, "messaging")
    settings = messaging_settings(tmp_path, messaging_url)
    try:
        async with Bus(own.bus("test"), role="test") as bus:
            async with private_auth(own, tmp_path, auth_url):
                ann, bob = await register(bus, "ann"), await register(bus, "bob")
                model = unique("model")
                async with run_messaging(own.bus("messaging"), settings):
                    await conversation(bus, ann, bob, model)
                    await delete(bus, await register(bus, "early"))  # one applied live
                    await eventually(lambda: _cursor_at(1))
                await delete(bus, ann)  # while messaging is down
            await forget_session(own.bus("messaging"), settings.instance)
            async with run_messaging(own.bus("messaging"), settings) as messaging:
                await asyncio.sleep(1.0)  # auth is down: nothing can be learnt yet
                assert await _cursor_at(1)
                assert not messaging.tombstones.caught_up.is_set()
                assert await Message.filter(sender=ann).exists(), "not removed without auth"
                async with private_auth(own, tmp_path, auth_url):
                    # The first request was lost with auth away: its timeout (5 s in the
                    # tests), a backoff, and the next one finds ann's tombstone.
                    await asyncio.wait_for(messaging.tombstones.caught_up.wait(), 10)
                    assert await inbox(bus, bob) == []
                    assert not await has_layout(bus, model, ann)
                # (Out of auth's database context again, the test reads messaging's.)
                assert await _cursor_at(2)
    finally:
        await drop_database(auth_url)
        await drop_database(messaging_url)


async def _cursor_at(seq: int) -> bool:
    """Whether the messaging database (this task's tortoise context) has applied up to ``seq``."""
    return await DeletionCursor.filter(id=1, last_seq=seq).exists()


async def forget_session(settings: BusSettings, instance: str) -> None:
    """Make the broker drop the persistent session of messaging ``instance``, with what it
    queued for it: connecting with its client id and a clean session does that."""
    client_id = persistent_client_id(settings, f"messaging-{instance}")
    async with Bus(settings, client_id=client_id, clean_session=True):
        pass
