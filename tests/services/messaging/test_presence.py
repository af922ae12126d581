"""Presence rules on a clock the test moves: debounce, hand-over and idling."""

from __future__ import annotations

from services.messaging.presence import Presence


def test_first_sighting_shows_the_largest_face() -> None:
    presence = Presence(hold=2, idle_after=10)
    assert presence.seen("m", ["ann", "bob"], now=0) == "ann"
    assert presence.user_at("m") == "ann"
    assert presence.mirrors_of("ann") == ["m"]


def test_frames_without_anyone_change_nothing_until_idle() -> None:
    presence = Presence(hold=2, idle_after=10)
    presence.seen("m", ["ann"], now=0)
    assert presence.seen("m", [], now=5) is None
    assert presence.expired(now=9.9) == []
    assert presence.seen("m", ["ann"], now=9.9) is None  # flickered back: no new display
    assert presence.expired(now=19.8) == []
    assert presence.expired(now=20) == ["m"]
    assert presence.user_at("m") is None


def test_two_people_taking_turns_do_not_thrash() -> None:
    presence = Presence(hold=2, idle_after=10)
    presence.seen("m", ["ann"], now=0)
    changes = [presence.seen("m", [name], now=t / 10)
               for t, name in enumerate(["bob", "ann", "bob", "ann"] * 4, start=1)]
    assert changes == [None] * 16
    assert presence.user_at("m") == "ann"


def test_somebody_else_takes_over_after_the_hold() -> None:
    presence = Presence(hold=2, idle_after=10)
    presence.seen("m", ["ann"], now=0)
    assert presence.seen("m", ["bob"], now=1.9) is None
    assert presence.seen("m", ["bob"], now=2.0) == "bob"
    assert presence.mirrors_of("ann") == []


def test_mirrors_are_independent() -> None:
    presence = Presence(hold=2, idle_after=10)
    presence.seen("hall", ["ann"], now=0)
    presence.seen("bath", ["ann"], now=1)
    assert sorted(presence.mirrors_of("ann")) == ["bath", "hall"]
    assert presence.next_expiry() == 10
    assert presence.expired(now=10) == ["hall"]
    assert presence.user_at("bath") == "ann"
