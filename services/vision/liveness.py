"""Whether a face in front of a camera is a live head, from its landmarks across frames.

A printed photo or a phone screen held up to the camera is a plane: whatever it does, its
points move by one homography, and nearly by one affine map at a mirror's distances. A real
head is not: as it turns, the nose moves against the eyes and the eye nearer the camera widens
while the farther one narrows.

A face's keypoints (:attr:`LocatedFace.keypoints`: SCRFD's with the insightface engine,
MTCNN's with dlib) are judged by the plane they stay on, at the end of this docstring. A face
without them (MTCNN refused dlib's box) is judged on three cues of dlib's five points (0 and 1
the outer and inner corners of the eye on the image's right, 2 and 3 those of the eye on the
image's left, 4 the base of the nose) per frame, as a :class:`Pose`:

* ``turn``: the nose's offset from the eyes' midpoint along the eye line, in eye gaps, positive
  towards the image's right. It follows the head's yaw (0.1 is about 12 degrees on the Hamilton
  clip), but an affine map moves it as well: a print tilted about a slanted axis shears the
  face and slides the nose sideways.
* ``asymmetry``: (width of the image-left eye - width of the image-right eye) / their sum,
  along the eye line. Ratios along a line are what an affine map keeps, so a print's stays put
  (up to dlib's jitter and a little perspective) while a turning head's follows its turn, by
  about a quarter to a half of ``turn``'s change.
* ``roll``: the eye line's angle. Shearing a print enough to slide the nose rolls the eye line
  too; a head turning does not have to.

Evidence is a change between the medians of the first and of the last :attr:`Rules.ends`
frames of a window (one pair of frames proves nothing: the points jitter): live when ``turn``
moved by at least :attr:`Rules.min_turn`, ``asymmetry`` moved the same way by at least
:attr:`Rules.min_slope` times that, and ``roll`` by at most :attr:`Rules.max_roll` degrees.
A head-turn challenge asks the same of a window, in the asked direction. The windows judged
are those that end at the newest frame, from :attr:`Rules.max_frames` frames long down to
:attr:`Rules.min_frames` (:func:`_latest`). The distributions the defaults come from are in
docs/vision.md (Liveness). The four eye corners lie nearly on one line, so no homography is
fitted to them.

The keypoints (the eye centres, the nose tip, the mouth corners) have no eye corners, so no
``asymmetry``; but their eyes and mouth corners span a proper plane,
so the window is judged by how far the points stay from one plane instead: live when ``turn``
moved by at least :attr:`Rules.min_plane_turn`, the points of its first and last frames are, by
the median over those pairs, at least :attr:`Rules.min_plane` eye gaps off the best homography
between them (:func:`plane_residual`), and the nose tip moved at least
:attr:`Rules.min_parallax` eye gaps, the way it turned, against the plane of the eyes and mouth
corners (:func:`nose_parallax`). A print or a screen, whatever its tilt and roll, stays on one
plane up to the points' jitter; so ``roll`` is not read. A window is judged so only when every
frame of it has keypoints, on dlib's points only when none has: the two kinds' cues do not
compare, so a window of both is no evidence (a shorter one may be of one kind).
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

import cv2
import numpy as np

from schemas.errors import ConfigError
from services.vision.engine import LocatedFace, Point


class Direction(StrEnum):
    """Which way a challenge asks the head to turn, in the person's own terms; on an unmirrored
    camera a turn to the person's left moves the nose towards the image's right."""

    LEFT = "left"
    RIGHT = "right"

    @property
    def sign(self) -> int:
        """How ``turn`` moves when the head turns this way."""
        return 1 if self is Direction.LEFT else -1


class Pose(NamedTuple):
    """One frame's cues (see the module docstring); ``points``: the face's keypoints in image
    pixels, for the plane cue (None without them: dlib's ``asymmetry`` is read instead; with
    them ``asymmetry`` is 0 and not read)."""

    turn: float
    asymmetry: float
    roll: float  # degrees
    points: tuple[Point, ...] | None = None


class Verdict(NamedTuple):
    """``live``: shown live (True), not shown (False: not yet, or never); ``score``: how far
    the window went towards the evidence asked for, 1 and more when it is enough."""

    live: bool
    score: float
    reason: str


@dataclass(frozen=True)
class Rules:
    """What counts as evidence (module docstring); the defaults come from docs/vision.md."""

    ends: int = 3
    min_turn: float = 0.18
    min_slope: float = 0.5
    max_roll: float = 5.0
    max_frames: int = 12  # the longest window judged
    # Keypoints (module docstring), in eye gaps.
    min_plane_turn: float = 0.10
    min_plane: float = 0.05
    min_parallax: float = 0.10

    def __post_init__(self) -> None:
        if self.ends < 1 or self.max_frames < 2 * self.ends:
            raise ConfigError("a liveness window holds at least two ends of at least a frame")
        if not self.min_turn > 0 or self.min_slope < 0 or not self.max_roll > 0:
            raise ConfigError("min_turn and max_roll must be positive, min_slope not negative")
        if not self.min_plane_turn > 0 or not self.min_plane > 0 or not self.min_parallax > 0:
            raise ConfigError("min_plane_turn, min_plane and min_parallax must be positive")

    @property
    def min_frames(self) -> int:
        return 2 * self.ends


def pose(face: LocatedFace) -> Pose:
    """The cues of one face: of its keypoints, or else of dlib's five points; ``ValueError``
    for other layouts or a face too small to read."""
    if face.keypoints is not None:
        return _keypoint_pose(face.keypoints)
    if len(face.landmarks) != 5:
        raise ValueError("liveness reads keypoints or dlib's five points")
    right_outer, right_inner, left_outer, left_inner, nose = face.landmarks
    ux, uy = right_outer[0] - left_outer[0], right_outer[1] - left_outer[1]
    span = math.hypot(ux, uy)
    left_mid, right_mid = _mid(left_outer, left_inner), _mid(right_outer, right_inner)
    gap = math.dist(left_mid, right_mid)
    if span < 2 or gap < 2:
        raise ValueError("the eyes are too close together to read")
    ux, uy = ux / span, uy / span

    def along(point: Point) -> float:
        return point[0] * ux + point[1] * uy

    left_width = along(left_inner) - along(left_outer)
    right_width = along(right_outer) - along(right_inner)
    widths = left_width + right_width
    if widths <= 0:
        raise ValueError("the eye corners are out of order")
    middle = _mid(left_mid, right_mid)
    turn = (along(nose) - along(middle)) / gap
    return Pose(turn, (left_width - right_width) / widths, math.degrees(math.atan2(uy, ux)))


def _keypoint_pose(keypoints: tuple[Point, ...]) -> Pose:
    if len(keypoints) != 5:
        raise ValueError("keypoints are five points")
    (lx, ly), (rx, ry), (nx, ny) = keypoints[:3]
    gap = math.hypot(rx - lx, ry - ly)
    if gap < 2:
        raise ValueError("the eyes are too close together to read")
    ux, uy = (rx - lx) / gap, (ry - ly) / gap
    turn = ((nx - (lx + rx) / 2) * ux + (ny - (ly + ry) / 2) * uy) / gap
    return Pose(turn, 0.0, math.degrees(math.atan2(uy, ux)), keypoints)


def plane_residual(first: Sequence[Point], second: Sequence[Point]) -> float:
    """How far ``second``'s keypoints are from ``first``'s moved by one homography: the root mean
    square distance to the best one's projections, in eye gaps of ``second`` (its points 0 and
    1). A plane's points (a print, a screen) stay on it but for their jitter; a turning head's
    nose tip leaves the plane of its eyes and mouth corners. 0 when no homography fits (the
    points coincide or lie on a line): no evidence."""
    source = np.asarray(first, dtype=np.float64)
    target = np.asarray(second, dtype=np.float64)
    homography, _ = cv2.findHomography(source, target, 0)  # all points, least squares
    gap = math.dist(second[0], second[1])
    if homography is None or gap < 2:
        return 0.0
    projected = cv2.perspectiveTransform(source[None], homography)[0]
    return math.sqrt(float(((projected - target) ** 2).sum(axis=1).mean())) / gap


def nose_parallax(first: Sequence[Point], second: Sequence[Point]) -> float:
    """How far the nose tip (point 2) of ``second`` lies from where the homography of the
    eyes and mouth corners (points 0, 1, 3, 4) from ``first`` puts it, along ``second``'s eye
    line in its eye gaps, positive towards the image's right as ``turn`` is. A head turning
    moves its nose tip out of that plane the way it turns; a plane's stays in it. 0 when the
    four points fix no homography."""
    corners = [0, 1, 3, 4]
    if math.dist(first[0], first[1]) < 2:
        return 0.0
    try:
        homography = cv2.getPerspectiveTransform(
            np.asarray([first[i] for i in corners], dtype=np.float32),
            np.asarray([second[i] for i in corners], dtype=np.float32))
    except cv2.error:
        return 0.0
    (lx, ly), (rx, ry) = second[0], second[1]
    gap = math.hypot(rx - lx, ry - ly)
    if gap < 2 or not np.isfinite(homography).all():
        return 0.0
    nose = np.asarray([[first[2]]], dtype=np.float64)
    px, py = (float(v) for v in cv2.perspectiveTransform(nose, homography)[0, 0])
    return ((second[2][0] - px) * (rx - lx) + (second[2][1] - py) * (ry - ly)) / gap / gap


@functools.lru_cache(maxsize=4096)
def _off_plane(first: tuple[Point, ...], second: tuple[Point, ...]) -> tuple[float, float]:
    """:func:`plane_residual` and :func:`nose_parallax` of a pair of frames. The windows
    judged on one frame share their last frames, and a frame's are judged again on the next
    ones, so most pairs recur: kept, they cost a fifth (bench/liveness.py)."""
    return plane_residual(first, second), nose_parallax(first, second)


def _mid(a: Point, b: Point) -> Point:
    return ((a[0] + b[0]) / 2, (a[1] + b[1]) / 2)


def passive(poses: Sequence[Pose], rules: Rules = Rules()) -> Verdict:
    """Whether the head turned, either way, within the last :attr:`Rules.max_frames` poses
    (see :func:`_latest` for the windows judged)."""

    def judge(window: Sequence[Pose]) -> Verdict:
        turn = _change(window, 0, rules.ends)
        return _judge(window, math.copysign(1.0, turn) if turn else 1.0, rules,
                      "the head turned")

    return _latest(poses, rules, judge, "frames of this face")


def challenged(poses: Sequence[Pose], direction: Direction, rules: Rules = Rules()) -> Verdict:
    """Whether the head turned ``direction`` within the last :attr:`Rules.max_frames` poses
    (those since the challenge was asked; see :func:`_latest` for the windows judged)."""
    return _latest(poses, rules,
                   lambda window: _judge(window, direction.sign, rules,
                                         f"the head turned {direction}"),
                   "frames since the challenge")


def _latest(poses: Sequence[Pose], rules: Rules, judge: Callable[[Sequence[Pose]], Verdict],
            counted: str) -> Verdict:
    """The first of the windows that end at the newest pose, from :attr:`Rules.max_frames`
    poses long down to :attr:`Rules.min_frames`, that ``judge`` finds live; else the one that
    came nearest. Shorter windows matter when frames come slowly (a busy worker analyses one
    frame in three): twelve of them then span seconds, and a head that turned and turned back
    within those would show no change between the ends of the longest."""
    recent = poses[-rules.max_frames:]
    if len(recent) < rules.min_frames:
        return Verdict(False, 0.0, f"{len(recent)} {counted}, {rules.min_frames} needed")
    nearest: Verdict | None = None
    for start in range(len(recent) - rules.min_frames + 1):
        verdict = judge(recent[start:])
        if verdict.live:
            return verdict
        if nearest is None or verdict.score > nearest.score:
            nearest = verdict
    assert nearest is not None
    return nearest


def _change(window: Sequence[Pose], cue: int, ends: int) -> float:
    def value(pose: Pose) -> float:
        return (pose.turn, pose.asymmetry, pose.roll)[cue]

    first = statistics.median(value(pose) for pose in window[:ends])
    last = statistics.median(value(pose) for pose in window[-ends:])
    return last - first


def _judge(window: Sequence[Pose], sign: float, rules: Rules, success: str) -> Verdict:
    with_keypoints = sum(pose.points is not None for pose in window)
    if with_keypoints == len(window):
        return _judge_plane(window, sign, rules, success)
    if with_keypoints:  # two kinds of points, whose cues do not compare: no evidence
        return Verdict(False, 0.0, "the face's keypoints came and went within the frames")
    turn = _change(window, 0, rules.ends) * sign
    asymmetry = _change(window, 1, rules.ends) * sign
    roll = abs(_change(window, 2, rules.ends))
    # Each ratio is 1 where its condition is just met, so the score is 1 or more when live.
    score = round(min(turn / rules.min_turn,
                      asymmetry / (rules.min_slope * max(turn, rules.min_turn)),
                      rules.max_roll / roll if roll else math.inf), 3)
    if turn < rules.min_turn:
        return Verdict(False, score, f"turned {turn:+.2f} eye gaps, {rules.min_turn} needed")
    if asymmetry < rules.min_slope * turn:
        return Verdict(False, score, "the nose moved but the eyes did not foreshorten as a"
                       " head's do (a tilted photo)")
    if roll > rules.max_roll:
        return Verdict(False, score, f"the eye line rolled {roll:.0f} degrees as the nose"
                       " moved (a tilted photo)")
    return Verdict(True, score, success)


def _judge_plane(window: Sequence[Pose], sign: float, rules: Rules, success: str) -> Verdict:
    turn = _change(window, 0, rules.ends) * sign
    pairs = [_off_plane(first.points, last.points) for first in window[:rules.ends]
             for last in window[-rules.ends:]
             if first.points is not None and last.points is not None]
    plane = statistics.median(residual for residual, _ in pairs)
    parallax = statistics.median(nose for _, nose in pairs) * sign
    score = round(min(turn / rules.min_plane_turn, plane / rules.min_plane,
                      parallax / rules.min_parallax), 3)
    if turn < rules.min_plane_turn:
        return Verdict(False, score, f"turned {turn:+.2f} eye gaps, {rules.min_plane_turn}"
                       " needed")
    if plane < rules.min_plane:
        return Verdict(False, score, f"the points moved as one plane's do (a photo):"
                       f" {plane:.3f} eye gaps off it, {rules.min_plane} needed")
    if parallax < rules.min_parallax:
        return Verdict(False, score, f"the nose moved {parallax:+.2f} eye gaps against the"
                       f" eyes and mouth, {rules.min_parallax} needed (a bent photo?)")
    return Verdict(True, score, success)
