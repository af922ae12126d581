"""The mirror experience over MQTT: recognition drives the display, debounced, with messages."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime

from broker.client import Bus
from schemas.errors import ServiceError
from schemas.messaging import (
    MESSAGING_LIST,
    MESSAGING_MIRROR,
    MESSAGING_SEND,
    MESSAGING_SET_LAYOUT,
    MIRROR_DISPLAY,
    MIRROR_STATUS,
    MIRROR_WIDGETS,
    MessagesRequest,
    MessagingError,
    MirrorRequest,
    MirrorWidgets,
    SendRequest,
    SetLayoutRequest,
)
from schemas.vision import VISION_RECOGNIZED, Recognized
from services.messaging.layouts import IDLE_LAYOUT
from services.messaging.service import Messaging
from tests.services.messaging.conftest import Screen, register, watch
from tests.support import unique

MODEL = {"time": [1, 1], "weather": [2, 2]}
PERSONAL = {"calendar": [1, 1], "messages": [1, 2]}


async def seen(bus: Bus, mirror_id: str, *names: str, trusted: bool = True) -> None:
    """Vision saw ``names`` at the mirror, their faces bound to their accounts (``trusted``)
    or not."""
    event = Recognized(mirror_id=mirror_id, names=list(names), unknown=0, at=datetime.now(UTC),
                       trusted=list(names) if trusted else [])
    await bus.publish(VISION_RECOGNIZED, event)


async def all_read(bus: Bus, user: str, ids: set[int] | None = None) -> bool:
    """Whether exactly ``ids`` (default: all) of ``user``'s messages are read, within a second:
    a message is marked read once the broker has its display, a moment after the mirror."""
    for _ in range(50):
        listed = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=user))
        read = {m.id for m in listed.messages if m.read}
        if read == (ids if ids is not None else {m.id for m in listed.messages}):
            return True
        await asyncio.sleep(0.02)
    return False


async def a_mirror(bus: Bus, model_code: str | None = None) -> Screen:
    mirror_id = unique("mirror")
    screen = await watch(bus, mirror_id)
    if model_code:
        state = MirrorWidgets(model_code=model_code, widgets={"weather": {"temp": 21}})
        await bus.publish(MIRROR_WIDGETS, state, retain=True, mirror_id=mirror_id)
    await bus.publish(MIRROR_STATUS, "online", retain=True, mirror_id=mirror_id)
    await screen.next(lambda d: d.state == "idle")
    return screen


async def test_a_recognised_user_sees_their_layout_and_messages(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    model = unique("model")
    await bus.request(MESSAGING_SET_LAYOUT, SetLayoutRequest(model_code=model, index=MODEL))
    await bus.request(MESSAGING_SET_LAYOUT,
                      SetLayoutRequest(model_code=model, index=PERSONAL, username=bob))
    for text in ("first", "second"):
        await bus.request(MESSAGING_SEND, SendRequest(sender_username=ann,
                          receiver_username=bob, content=text), qos=1)
    screen = await a_mirror(bus, model)
    assert screen.displays[-1].layout == {k: tuple(v) for k, v in MODEL.items()}

    await seen(bus, screen.mirror_id, bob)
    shown = await screen.next(lambda d: d.user == bob)
    assert shown.state == "present"
    assert shown.layout == {k: tuple(v) for k, v in PERSONAL.items()}
    assert [m.content for m in shown.messages] == ["second", "first"]
    assert {m.sender for m in shown.messages} == {ann}
    assert await all_read(bus, bob), "shown on a mirror, so read"

    # A message for somebody standing at the mirror shows within a second.
    started = time.monotonic()
    await bus.request(MESSAGING_SEND, SendRequest(sender_username=ann, receiver_username=bob,
                      content="are you there?"), qos=1)
    live = await screen.next(lambda d: any(m.content == "are you there?" for m in d.messages),
                             timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert [m.content for m in live.messages] == ["are you there?", "second", "first"]

    # Nobody seen for idle_after (1.5 s in the tests): back to the model's layout.
    idle = await screen.next(lambda d: d.state == "idle" and d.at > live.at, timeout=4.0)
    assert idle.user is None and idle.messages == []
    assert idle.layout == {k: tuple(v) for k, v in MODEL.items()}

    # Next visit: nothing unread any more.
    await seen(bus, screen.mirror_id, bob)
    again = await screen.next(lambda d: d.user == bob and d.at > idle.at)
    assert again.messages == []


async def test_flicker_and_turn_taking_do_not_thrash(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    screen = await a_mirror(bus)
    await seen(bus, screen.mirror_id, ann)
    await screen.next(lambda d: d.user == ann)
    screen.forget()
    for name in [bob, ann] * 5:  # 0.2 s, well inside the hold of 0.5 s
        await seen(bus, screen.mirror_id, name)
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)
    assert screen.displays == []
    # ann walks away; bob stays in view: bob takes over once the hold has passed.
    await asyncio.sleep(0.5)
    await seen(bus, screen.mirror_id, bob)
    await screen.next(lambda d: d.user == bob)
    assert [d.user for d in screen.displays] == [bob]


async def test_someone_not_registered_gets_the_default_layout(bus: Bus) -> None:
    screen = await a_mirror(bus)  # no model code: the built-in idle layout
    assert screen.displays[-1].layout == IDLE_LAYOUT
    await seen(bus, screen.mirror_id, "Display Name Only")
    shown = await screen.next(lambda d: d.state == "present")
    assert shown.user == "Display Name Only" and shown.messages == []


async def test_the_display_is_retained(bus: Bus) -> None:
    ann = await register(bus, "ann")
    screen = await a_mirror(bus)
    await seen(bus, screen.mirror_id, ann)
    await screen.next(lambda d: d.user == ann)
    late = await watch(bus, screen.mirror_id)  # a mirror that reconnects
    assert (await late.next(lambda d: True)).user == ann


async def test_mirror_state_is_kept(bus: Bus, messaging_service: Messaging) -> None:
    model = unique("model")
    screen = await a_mirror(bus, model)
    state = await bus.request(MESSAGING_MIRROR, MirrorRequest(mirror_id=screen.mirror_id))
    assert (state.status, state.model_code) == ("online", model)
    assert state.widgets == {"weather": {"temp": 21}}
    assert state.display is not None and state.display.state == "idle"

    topic = MIRROR_WIDGETS.format(mirror_id=screen.mirror_id)
    for junk in (b"not json", b"[1]", b'{"model_code": 5}', b""):
        await bus.publish_raw(topic, junk)
    await bus.publish(MIRROR_STATUS, "sideways", mirror_id=screen.mirror_id)
    await bus.publish(MIRROR_STATUS, "offline", retain=True, mirror_id=screen.mirror_id)
    for _ in range(50):
        state = await bus.request(MESSAGING_MIRROR, MirrorRequest(mirror_id=screen.mirror_id))
        if state.status == "offline":
            break
        await asyncio.sleep(0.05)
    assert (state.status, state.model_code) == ("offline", model)

    try:
        await bus.request(MESSAGING_MIRROR, MirrorRequest(mirror_id=unique("nowhere")))
    except ServiceError as exc:
        assert exc.code == MessagingError.MIRROR_NOT_FOUND
    else:
        raise AssertionError("an unknown mirror has no state")
    await bus.publish(MIRROR_DISPLAY, b"", retain=True, mirror_id=screen.mirror_id)


async def test_a_mirror_is_first_shown_the_layout_of_the_model_it_names(bus: Bus) -> None:
    """A mirror says its widgets, then that it is online, back to back; the service handles
    each message in a task of its own, and still its first display has the model's layout,
    not the built-in one for a moment (each mirror's messages are handled in arrival order)."""
    model = unique("model")
    await bus.request(MESSAGING_SET_LAYOUT, SetLayoutRequest(model_code=model, index=MODEL))
    screens = await asyncio.gather(*(a_mirror(bus, model) for _ in range(12)))
    for screen in screens:
        assert screen.displays[0].state == "idle"
        assert screen.displays[0].layout == {k: tuple(v) for k, v in MODEL.items()}
        await bus.publish(MIRROR_DISPLAY, b"", retain=True, mirror_id=screen.mirror_id)


async def test_widgets_after_the_status_bring_the_models_layout(bus: Bus) -> None:
    model = unique("model")
    await bus.request(MESSAGING_SET_LAYOUT, SetLayoutRequest(model_code=model, index=MODEL))
    screen = await a_mirror(bus)  # online, idle, no model known yet
    assert screen.displays[-1].layout == IDLE_LAYOUT
    state = MirrorWidgets(model_code=model, widgets={})
    await bus.publish(MIRROR_WIDGETS, state, retain=True, mirror_id=screen.mirror_id)
    again = await screen.next(lambda d: d.layout == {k: tuple(v) for k, v in MODEL.items()})
    assert again.state == "idle"
    await bus.publish(MIRROR_DISPLAY, b"", retain=True, mirror_id=screen.mirror_id)


async def test_a_burst_shows_its_newest_and_what_never_showed_stays_unread(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    screen = await a_mirror(bus)
    await seen(bus, screen.mirror_id, bob)
    await screen.next(lambda d: d.user == bob)
    await asyncio.gather(*(
        bus.request(MESSAGING_SEND, SendRequest(sender_username=ann, receiver_username=bob,
                    content=f"burst {i}"), qos=1)
        for i in range(25)
    ))
    listed = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=bob))
    newest = [m.id for m in listed.messages[:10]]  # the display holds 10 in the tests
    final = await screen.next(lambda d: [m.id for m in d.messages] == newest)
    assert final.user == bob
    shown_ever = {m.id for d in screen.displays for m in d.messages}
    assert await all_read(bus, bob, shown_ever)


async def test_a_face_not_bound_to_the_account_is_only_greeted(bus: Bus) -> None:
    ann, bob = await register(bus, "ann"), await register(bus, "bob")
    model = unique("model")
    await bus.request(MESSAGING_SET_LAYOUT,
                      SetLayoutRequest(model_code=model, index=PERSONAL, username=bob))
    for text in ("first", "second"):
        await bus.request(MESSAGING_SEND, SendRequest(sender_username=ann,
                          receiver_username=bob, content=text), qos=1)
    screen = await a_mirror(bus, model)

    await seen(bus, screen.mirror_id, bob, trusted=False)
    greeted = await screen.next(lambda d: d.user == bob)
    assert (greeted.state, greeted.unlocked, greeted.messages) == ("present", False, [])
    assert greeted.layout == {k: tuple(v) for k, v in PERSONAL.items()}
    # A message arriving while bob is only greeted waits too.
    await bus.request(MESSAGING_SEND, SendRequest(sender_username=ann, receiver_username=bob,
                      content="while greeted"), qos=1)
    await asyncio.sleep(0.3)
    assert all(d.messages == [] for d in screen.displays)
    listed = await bus.request(MESSAGING_LIST, MessagesRequest(receiver_username=bob))
    assert [m.read for m in listed.messages] == [False, False, False], "none shown, none read"

    # bob's bound photo is the nearest now: unlocked at once, everything unread shows.
    await seen(bus, screen.mirror_id, bob)
    unlocked = await screen.next(lambda d: d.unlocked)
    assert unlocked.user == bob
    assert [m.content for m in unlocked.messages] == ["while greeted", "second", "first"]
    assert await all_read(bus, bob)
