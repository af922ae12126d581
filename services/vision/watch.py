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

With an anti-spoofing model (``MIRRORHUB_LIVENESS_MODEL``, services/vision/spoof.py) each frame's
face also comes with the model's live probability, and the track's last
:attr:`LivenessSettings.model_frames` of them are its verdict. A median below
:attr:`LivenessSettings.spoof_below` is a confident spoof: the face is not live, whatever the
landmarks showed (a track already live shows not live while it lasts). When all of them reach
the model's own threshold, the model is sure the face is real, and a window whose cues score
:attr:`LivenessSettings.assisted` (rather than 1) is enough, passive or challenged: the head
must still move, only less far. The model alone never makes a face live.
"""

from __future__ import annotations

import secrets
import statistics
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from typing import NamedTuple

from schemas.errors import ConfigError
from services.vision.engine import LocatedFace
from services.vision.insightface_liveness import LivenessScore
from services.vision.liveness import Direction, Pose, Rules, Verdict, challenged, passive, pose


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
    # The anti-spoofing model's verdict (module docstring).
    model_frames: int = 3
    spoof_below: float = 0.2
    assisted: float = 0.75

    def __post_init__(self) -> None:
        if self.challenge_after < 0 or not self.challenge_for > 0:
            raise ConfigError("challenge_after must not be negative, challenge_for positive")
        if self.model_frames < 1 or not 0 <= self.spoof_below <= 1 or not self.assisted > 0:
            raise ConfigError("model_frames must be positive, spoof_below within [0, 1] and"
                              " assisted positive")


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
    scores: deque[LivenessScore] = field(init=False)
    model_real: bool = False

    def __post_init__(self) -> None:
        self.poses = deque(maxlen=self.settings.rules.max_frames)
        self.scores = deque(maxlen=self.settings.model_frames)

    def see(self, face: LocatedFace, now: float, spoof: LivenessScore | None = None) -> Liveness:
        """Take this frame's face, and the model's verdict on it if there is a model, into the
        evidence; what it shows so far."""
        settings = self.settings
        if settings.mode is Mode.OFF:
            return Liveness(None, "liveness is off")
        spoofed = self._model(spoof)
        if spoofed is not None:
            return Liveness(False, spoofed)
        if self.live:
            return Liveness(True, self.reason)
        try:
            seen = pose(face)
        except ValueError as exc:
            return Liveness(False, f"no liveness cues: {exc}")
        self.poses.append(seen)
        verdict = passive(list(self.poses), settings.rules)
        if self._enough(verdict):
            return self._shown(f"passive: {self._why(verdict)}")
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
        if self._enough(verdict):
            return self._shown(f"challenge: {self._why(verdict)}")
        return Liveness(False, f"challenge: {verdict.reason}", prompt_for(self.direction))

    def _model(self, spoof: LivenessScore | None) -> str | None:
        """Take the model's verdict on this frame; why the face is a spoof, if it is one."""
        if spoof is None or spoof.live_score is None:  # no model, or the face not judged
            return None
        self.scores.append(spoof)
        if len(self.scores) < self.settings.model_frames:
            return None
        median = statistics.median(score.live_score or 0.0 for score in self.scores)
        self.model_real = all(score.is_live for score in self.scores)
        if median < self.settings.spoof_below:
            return (f"model: the liveness model judged the face a spoof (live probability"
                    f" {median:.2f}, {self.settings.spoof_below} needed)")
        return None

    def _enough(self, verdict: Verdict) -> bool:
        return verdict.live or (self.model_real and verdict.score >= self.settings.assisted)

    def _why(self, verdict: Verdict) -> str:
        if verdict.live:
            return verdict.reason
        return (f"the head moved (score {verdict.score}) and the liveness model judged the"
                " face real")

    def _shown(self, reason: str) -> Liveness:
        self.live, self.reason, self.direction = True, reason, None
        self.poses.clear()
        self.since_asked = []
        return Liveness(True, reason)
