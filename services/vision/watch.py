"""Liveness per tracked face at a mirror: passive evidence first, a head-turn challenge after.

Each track (services/vision/tracking.py) holds a :class:`Watch`: the poses of its face on the
frames it was seen on (:func:`services.vision.liveness.pose`), at most
:attr:`~services.vision.liveness.Rules.max_frames`. A track is one person (the tracker ends it
when the descriptor says somebody else stands there), so evidence gathered on it is that
person's, and once shown live a track stays live until it ends.

With ``MIRRORHUB_LIVENESS=challenge`` (the default), a track that has shown no passive evidence
:attr:`LivenessSettings.challenge_after` seconds after it started is asked to turn its head, the
direction drawn at random; the frames since the prompt must show that turn
(:func:`services.vision.liveness.challenged`) within :attr:`LivenessSettings.challenge_for`
seconds, else another direction is drawn. ``passive`` never asks; ``off`` judges nothing and
the face's ``live`` is null.
"""

from __future__ import annotations

import secrets
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from schemas.errors import ConfigError
from services.vision.engine import LocatedFace
from services.vision.liveness import Direction, Pose, Rules, challenged, passive, pose


class Mode(StrEnum):
    """``MIRRORHUB_LIVENESS``."""

    OFF = "off"
    PASSIVE = "passive"
    CHALLENGE = "challenge"


@dataclass(frozen=True)
class LivenessSettings:
    mode: Mode = Mode.CHALLENGE
    rules: Rules = field(default_factory=Rules)
    challenge_after: float = 3.0  # seconds of a track without passive evidence
    challenge_for: float = 10.0  # seconds to meet one challenge

    def __post_init__(self) -> None:
        if self.challenge_after < 0 or not self.challenge_for > 0:
            raise ConfigError("challenge_after must not be negative, challenge_for positive")


class Liveness(NamedTuple):
    """What a frame's face shows: ``live`` null when liveness is off; ``prompt`` the challenge
    the mirror is to show, while one is open."""

    live: bool | None
    reason: str
    prompt: str | None = None


def prompt_for(direction: Direction) -> str:
    return f"turn your head to your {direction}"


@dataclass(eq=False)
class Watch:
    """One track's evidence (module docstring)."""

    settings: LivenessSettings
    started_at: float
    poses: deque[Pose] = field(init=False)
    live: bool = False
    reason: str = "not seen yet"
    direction: Direction | None = None
    asked_at: float = 0.0
    since_asked: list[Pose] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.poses = deque(maxlen=self.settings.rules.max_frames)

    def see(self, face: LocatedFace, now: float) -> Liveness:
        """Take this frame's face into the evidence; what it shows so far."""
        settings = self.settings
        if settings.mode is Mode.OFF:
            return Liveness(None, "liveness is off")
        if self.live:
            return Liveness(True, self.reason)
        try:
            seen = pose(face)
        except ValueError as exc:
            return Liveness(False, f"no liveness cues: {exc}")
        self.poses.append(seen)
        verdict = passive(list(self.poses), settings.rules)
        if verdict.live:
            return self._shown(f"passive: {verdict.reason}")
        if settings.mode is Mode.PASSIVE:
            return Liveness(False, f"passive: {verdict.reason}")
        return self._challenge(seen, now)

    def _challenge(self, seen: Pose, now: float) -> Liveness:
        settings = self.settings
        if self.direction is not None and now - self.asked_at > settings.challenge_for:
            self.direction = None  # not met in time: ask again, maybe the other way
        if self.direction is None:
            if now - self.started_at < settings.challenge_after:
                return Liveness(False, "passive: no evidence yet")
            self.direction = secrets.choice(list(Direction))
            self.asked_at, self.since_asked = now, []
        self.since_asked.append(seen)
        self.since_asked = self.since_asked[-settings.rules.max_frames:]
        verdict = challenged(self.since_asked, self.direction, settings.rules)
        if verdict.live:
            return self._shown(f"challenge: {verdict.reason}")
        return Liveness(False, f"challenge: {verdict.reason}", prompt_for(self.direction))

    def _shown(self, reason: str) -> Liveness:
        self.live, self.reason, self.direction = True, reason, None
        self.poses.clear()
        self.since_asked = []
        return Liveness(True, reason)
