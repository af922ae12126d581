"""Liveness on a face's keypoints, the default with both engines: does a face stay on one plane?

With dlib the keypoints are MTCNN's (services/vision/keypoints.py), in SCRFD's layout; they are
read here on Hamilton's head turning and on the photo attacks of
tests/services/vision/attacks.py. The pretrained SCRFD is not ours to ship and the tests' tiny
stand-in finds only synthetic squares, so the last test shows the insightface engine's own
points reaching the cue, on the stand-in pack.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from services.vision.dlib_engine import DlibEngine
from services.vision.engine import LocatedFace
from services.vision.liveness import (
    Direction,
    Pose,
    Rules,
    challenged,
    nose_parallax,
    passive,
    plane_residual,
    pose,
)
from services.vision.sightings import region
from tests.services.vision.attacks import FRAME_SIZE, Still, attacks, print_of
from tests.services.vision.support import Photos
from tests.services.vision.test_liveness import HAMILTON, SEED, STILLS, dlib_points, largest

# Frames 93 to 104: he turns away, to his right (the nose towards the image's left), slowly:
# dlib's own points are not enough within 12 frames there (docs/vision.md). Frames 131 to 142:
# he turns back, faster.
AWAY = (93, 104)
BACK = (131, 142)


@pytest.fixture(scope="module")
def hamilton(photos: Photos, engine: DlibEngine) -> dict[int, Pose]:
    poses = {}
    for relative in photos.listing(HAMILTON):
        faces = engine.locate(photos.image(relative))
        if faces:
            poses[int(Path(relative).stem[-3:])] = pose(largest(faces))
    assert len(poses) >= 70
    return poses


def frames(poses: dict[int, Pose], first: int, last: int) -> list[Pose]:
    return [each for number, each in sorted(poses.items()) if first <= number <= last]


def test_keypoints_are_read_as_such(hamilton: dict[int, Pose]) -> None:
    for each in hamilton.values():
        assert each.points is not None and len(each.points) == 5
        assert each.asymmetry == 0.0


def test_both_turns_pass_passive(hamilton: dict[int, Pose]) -> None:
    for window in (frames(hamilton, *AWAY), frames(hamilton, *BACK)):
        for judged in (window, window[::-1]):
            verdict = passive(judged)
            assert verdict.live and verdict.reason == "the head turned", verdict


def test_a_busy_worker_sees_the_turn_within_a_few_frames(hamilton: dict[int, Pose]) -> None:
    """Seen one frame in three or in four, looped, whichever frame the worker starts on: live
    within 8 of the frames it analyses (6 or fewer measured; dlib's own points take up to a
    pass of the clip, or never)."""
    clip = list(hamilton.values()) * 4
    for step in (3, 4):
        for start in range(step):
            seen = clip[start::step]
            first = next(n for n in range(len(seen)) if passive(seen[:n + 1]).live)
            assert first < 8, (step, start, first)


def test_each_turn_meets_its_challenge_and_fails_the_other(hamilton: dict[int, Pose]) -> None:
    away, back = frames(hamilton, *AWAY), frames(hamilton, *BACK)
    assert challenged(back, Direction.LEFT).live  # the nose moves to the image's right
    assert challenged(away, Direction.RIGHT).live
    for wrong in (challenged(back, Direction.RIGHT), challenged(away, Direction.LEFT)):
        assert not wrong.live and wrong.reason.startswith("turned -"), wrong


def test_a_plane_moved_by_homographies_stays_on_one(hamilton: dict[int, Pose]) -> None:
    points = hamilton[BACK[0]].points
    assert points is not None
    source = np.asarray(points)
    rng = np.random.default_rng(3)
    for _ in range(20):
        warp = np.eye(3) + rng.normal(0, [[0.1, 0.1, 5], [0.1, 0.1, 5], [3e-4, 3e-4, 0]])
        moved = np.c_[source, np.ones(5)] @ warp.T
        target = [(float(x), float(y)) for x, y in moved[:, :2] / moved[:, 2:]]
        assert plane_residual(points, target) < 1e-6
        assert abs(nose_parallax(points, target)) < 1e-4
        # The nose tip a tenth of an eye gap off the plane of the eyes and mouth corners,
        # along the eye line:
        line = np.subtract(target[1], target[0]) / math.dist(target[0], target[1])
        nose = tuple(np.add(target[2], 0.1 * math.dist(target[0], target[1]) * line))
        off = [*target[:2], (float(nose[0]), float(nose[1])), *target[3:]]
        assert plane_residual(points, off) > 0.01
        assert nose_parallax(points, off) == pytest.approx(0.1, abs=1e-4)
    # Nothing to fit: no evidence.
    assert plane_residual([(0.0, 0.0)] * 5, list(points)) == 0.0
    assert nose_parallax([(0.0, 0.0)] * 5, list(points)) == 0.0


def test_points_that_barely_move_are_no_evidence(hamilton: dict[int, Pose]) -> None:
    few = passive(frames(hamilton, *BACK)[:5])
    assert not few.live and few.reason == "5 frames of this face, 6 needed"
    still = [hamilton[BACK[0]]] * 12
    verdict = passive(still)
    assert not verdict.live and verdict.reason.startswith("turned +0.00"), verdict


@pytest.mark.slow
@pytest.mark.timeout(600)  # 6 min when busy
def test_no_photo_attack_is_live(photos: Photos, engine: DlibEngine) -> None:
    stills: list[Still] = [print_of(Path(relative).stem, photos.image(relative),
                                    largest(photos.faces(relative)))
                           for relative in photos.listing("train") + STILLS]
    rules, seen = Rules(), 0
    for name, images in attacks(stills, 200, rules.max_frames, SEED):
        poses, near = [], None
        for image in images:  # dlib scans around the face of the frame before, as tracking does
            faces: list[LocatedFace] = engine.locate(image, near) if near else []
            faces = faces or engine.locate(image)
            if faces:
                poses.append(pose(faces[0]))
                near = [region(faces[0].box, 2.0, *FRAME_SIZE)]
        assert len(poses) >= rules.min_frames, name
        assert all(each.points is not None for each in poses)
        for verdict in (passive(poses), challenged(poses, Direction.LEFT),
                        challenged(poses, Direction.RIGHT)):
            assert not verdict.live, (name, seen, verdict)
        seen += 1
    assert seen == 200


def test_the_insightface_engines_points_reach_the_cue(tmp_path: Path) -> None:
    pytest.importorskip("insightface.model_zoo", reason="the insightface extra is not installed")
    from services.vision.insightface_engine import InsightFaceEngine
    from services.vision.sightings import follow
    from services.vision.tracking import Tracker, TrackSettings
    from services.vision.watch import LivenessSettings, Mode
    from tests.services.vision.onnx_models import blank_image, draw_face, write_pack
    from tests.services.vision.test_tracking import Camera

    camera = Camera()
    tracker = Tracker(TrackSettings(liveness=LivenessSettings(mode=Mode.PASSIVE)), 0.6, camera)
    seen: list[tuple[LocatedFace, Pose, str]] = []
    with InsightFaceEngine(write_pack(tmp_path / "pack")) as engine:
        for step in range(8):  # the synthetic face slides and grows, as a print would
            image = blank_image(480, 640)
            draw_face(image, 100 + 6 * step, 80 + 3 * step, 200 + 4 * step, identity=1)
            planned = tracker.plan("m1")
            (tracked,) = tracker.update(planned, follow(engine, image, planned.plan))
            camera.tick()
            located = engine.locate(image)[0]
            seen.append((located, pose(located), tracked.liveness.reason))
    for located, each, _ in seen:
        assert each.points == located.landmarks  # SCRFD's five points, read as such
    # The stand-in's points are fixed fractions of its box: a plane, and no turn.
    assert plane_residual(seen[0][0].landmarks, seen[-1][0].landmarks) < 0.01
    last = seen[-1][2]
    assert last.startswith("passive: turned ") and last.endswith(" eye gaps, 0.1 needed"), last
    assert [reason for *_, reason in seen[:5]] == ["passive: 1 frames of this face, 6 needed",
                                                   "passive: 2 frames of this face, 6 needed",
                                                   "passive: 3 frames of this face, 6 needed",
                                                   "passive: 4 frames of this face, 6 needed",
                                                   "passive: 5 frames of this face, 6 needed"]


def test_a_window_of_both_kinds_of_points_is_no_evidence(photos: Photos,
                                                         engine: DlibEngine) -> None:
    """Faces MTCNN refused (dlib's own points) among faces with keypoints: the two kinds' cues
    do not compare, so such a window proves nothing; one of a single kind is judged."""
    faces = [largest(found) for relative in photos.listing(HAMILTON)
             if BACK[0] <= int(Path(relative).stem[-3:]) <= BACK[1]
             and (found := engine.locate(photos.image(relative)))]
    keypoints = [pose(face) for face in faces]
    own = [pose(dlib_points(face)) for face in faces]
    assert passive(keypoints).live and passive(own).live  # each kind alone: the turn back
    assert len(faces) == 12
    # Frames 3 to 8 without keypoints: every window ending at the last frame holds both kinds.
    mixed = keypoints[:3] + own[3:9] + keypoints[9:]
    for verdict in (passive(mixed), challenged(mixed, Direction.LEFT)):
        assert (verdict.live, verdict.score, verdict.reason) == (
            False, 0.0, "the face's keypoints came and went within the frames")
    # Frame 5 alone without: the 6-frame window after it, of keypoints alone, is judged.
    assert passive(keypoints[:5] + own[5:6] + keypoints[6:]).reason != verdict.reason
