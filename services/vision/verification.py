"""Liveness of a sequence of frames an app filmed: passive, or against a signed challenge.

The frames are followed in order as a mirror's are (:mod:`services.vision.tracking`: the
engine's ``locate`` on every frame, its ``embed`` only where the face is not plainly the one of
the frame before), off the event loop, with a tracker of this request's own. Every frame must
show exactly one face, of one person: each descriptor computed on the way must lie within the
gallery's threshold of the first frame's, the distance that separates two people. The largest
face's cues (:func:`services.vision.liveness.pose`) are then judged as a mirror's watch judges
them, frame by frame: the first window of at most :attr:`~services.vision.liveness.Rules.max_frames`
frames, ending at any frame, that shows the head turned (either way for the passive verdict, the
challenge's way with one) makes the sequence live; else the window that came nearest.

Every outcome is a :class:`~schemas.liveness.LivenessVerdict`, failures included, with the reason:
challenges (services/vision/challenges.py) are checked before any frame is analysed, and a
frame that is no image, or shows no face or several, ends the analysis there.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import math
from collections.abc import Sequence

import numpy as np

from broker.client import Bus, Message
from schemas.errors import BusUnavailable, ServiceError
from schemas.liveness import (
    MAX_FRAMES,
    MIN_FRAMES,
    VISION_CHALLENGE_USED,
    ChallengeUsed,
    LivenessChallenge,
    LivenessChallengeRequest,
    LivenessStep,
    LivenessVerdict,
    LivenessVerifyRequest,
)
from services.vision.analysis import Analysis
from services.vision.challenges import Challenge, ChallengeRefused, Challenges, UsedNonces
from services.vision.engine import Embedding
from services.vision.liveness import Direction, Pose, Rules, Verdict, challenged, passive, pose
from services.vision.tracking import Tracker, TrackSettings
from services.vision.watch import LivenessSettings, Mode, prompt_for

log = logging.getLogger(__name__)

# The tracker's clock runs one frame interval a frame: the frames' own times are unknown, and
# a track's settings (embedding renewed every 2 s) read as every 20 frames.
FRAME_INTERVAL = 0.1
_SEQUENCE = "verify"  # the tracker's one "mirror"
# Whole-frame scans on every frame: a second face must not go unseen. The watch judges nothing.
_TRACKING = TrackSettings(scan=0.0, liveness=LivenessSettings(mode=Mode.OFF))


class Unusable(Exception):
    """The frames cannot be judged; the message says which frame and why."""


def judge(poses: Sequence[Pose], direction: Direction | None, rules: Rules) -> Verdict:
    """The first window that shows the head turned (``direction``'s way, or either way when
    None), else the one that came nearest (see the module docstring)."""
    best: Verdict | None = None
    for end in range(min(rules.min_frames, len(poses)), len(poses) + 1):
        window = poses[:end]
        verdict = passive(window, rules) if direction is None else challenged(
            window, direction, rules)
        if verdict.live:
            return verdict
        if best is None or verdict.score > best.score:
            best = verdict
    assert best is not None, "judged without a pose"
    return best


def _fail(reason: str) -> LivenessVerdict:
    return LivenessVerdict(live=False, score=0.0, reason=reason)


class Verifier:
    """The handlers of ``svc/vision/liveness_challenge`` and ``svc/vision/liveness_verify``,
    and the listener that keeps challenges single-use across workers.

    ``same_person`` is the embedding distance within which two frames show one person: the
    gallery's recognition threshold."""

    def __init__(self, analysis: Analysis, same_person: float, challenges: Challenges,
                 bus: Bus, rules: Rules | None = None) -> None:
        self.analysis = analysis
        self.same_person = same_person
        self.challenges = challenges
        self.bus = bus
        self.rules = rules or Rules()
        self.used = UsedNonces()

    async def challenge(self, req: LivenessChallengeRequest) -> LivenessChallenge:
        challenge_id, challenge = self.challenges.issue(req.username)
        steps = [LivenessStep(action=f"turn_{step}", prompt=prompt_for(step))
                 for step in challenge.steps]
        return LivenessChallenge(challenge_id=challenge_id, steps=steps,
                                 expires_in=self.challenges.ttl)

    async def verify(self, req: LivenessVerifyRequest) -> LivenessVerdict:
        count = len(req.frames)
        if not MIN_FRAMES <= count <= MAX_FRAMES:
            return _fail(f"{count} frames; send {MIN_FRAMES} to {MAX_FRAMES}")
        challenge: Challenge | None = None
        if req.challenge_id is not None:
            try:
                challenge = self.challenges.check(req.challenge_id, req.username)
            except ChallengeRefused as exc:
                return _fail(str(exc))
            if not await self._claim(challenge):
                return _fail("the challenge was used already; ask for a new one")
        try:
            poses = await self._poses(req.frames)
        except Unusable as exc:
            return _fail(str(exc))
        direction = challenge.steps[0] if challenge else None  # challenges have one step
        verdict = judge(poses, direction, self.rules)
        if challenge is not None and self.used.contested(challenge.nonce):
            return _fail("the challenge was presented twice at once; ask for a new one")
        kind = "passive" if challenge is None else "challenge"
        score = verdict.score if math.isfinite(verdict.score) else 0.0
        return LivenessVerdict(live=verdict.live, score=score, reason=f"{kind}: {verdict.reason}")

    async def on_used(self, message: Message) -> None:
        """Another worker took a challenge: refuse it here too."""
        event = ChallengeUsed.model_validate_json(message.payload)
        if event.worker != self.bus.client_id:
            self.used.heard(event.nonce, event.expires_at)

    async def _claim(self, challenge: Challenge) -> bool:
        if not self.used.claim(challenge.nonce, challenge.expires_at):
            return False
        event = ChallengeUsed(nonce=challenge.nonce, expires_at=challenge.expires_at,
                              worker=self.bus.client_id)
        # Without the broker the reply is lost too; the nonce is taken here all the same.
        with contextlib.suppress(BusUnavailable):
            await self.bus.publish(VISION_CHALLENGE_USED, event)
        return True

    async def _poses(self, frames: Sequence[bytes]) -> list[Pose]:
        """The largest face's cues on each frame, or :class:`Unusable`."""
        ticks = itertools.count()
        tracker = Tracker(_TRACKING, self.same_person,
                          clock=lambda: next(ticks) * FRAME_INTERVAL)
        first: Embedding | None = None
        poses = []
        for number, frame in enumerate(frames, 1):
            planned = tracker.plan(_SEQUENCE)
            try:
                followed = await self.analysis.follow(frame, planned.plan)
            except ServiceError as exc:  # the image codes: the frame is not a usable image
                raise Unusable(f"frame {number}: {exc.message}") from exc
            tracked = tracker.update(planned, followed)
            if len(tracked) != 1:
                raise Unusable(f"frame {number}: no face" if not tracked else
                               f"frame {number}: {len(tracked)} faces; film one person alone")
            face = tracked[0]
            if first is None:
                first = face.face.embedding
            elif face.embedded and self._other(first, face.face.embedding):
                raise Unusable(f"frame {number} shows somebody else than frame 1")
            try:
                poses.append(pose(followed.sightings[0].face))  # the tracked face, located
            except ValueError as exc:
                raise Unusable(f"frame {number}: no liveness cues: {exc}") from exc
        return poses

    def _other(self, first: Embedding, embedding: Embedding) -> bool:
        return float(np.linalg.norm(embedding - first)) > self.same_person
