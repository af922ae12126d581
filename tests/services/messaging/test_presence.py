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


def test_only_a_trusted_face_unlocks_and_an_untrusted_one_locks_after_the_hold() -> None:
    presence = Presence(hold=2, idle_after=10)
    assert presence.seen("m", ["ann"], now=0) == "ann"
    assert not presence.unlocked("m")  # greeted by name only
    assert presence.seen("m", ["ann"], now=0.5, trusted={"ann"}) == "ann"  # unlocks at once
    assert presence.unlocked("m")
    # Untrusted sightings of "ann" (her unbound photo, or somebody enrolled under her name)
    # between trusted ones change nothing...
    for t in (1.0, 1.5, 2.0, 2.4):
        assert presence.seen("m", ["ann"], now=t, trusted=() if t % 1 else {"ann"}) is None
    assert presence.unlocked("m")
    # ...and lock the display once no trusted one has come for the hold.
    assert presence.seen("m", ["ann"], now=3.9) is None
    assert presence.seen("m", ["ann"], now=4.0) == "ann"
    assert not presence.unlocked("m") and presence.user_at("m") == "ann"


def test_trust_belongs_to_the_person_shown() -> None:
    presence = Presence(hold=2, idle_after=10)
    presence.seen("m", ["ann", "bob"], now=0, trusted={"bob"})
    assert presence.user_at("m") == "ann" and not presence.unlocked("m")
    presence.seen("hall", ["bob"], now=0, trusted={"bob"})
    assert presence.leave("bob") == ["hall"]
    assert presence.user_at("hall") is None and not presence.unlocked("hall")
    assert presence.user_at("m") == "ann"
