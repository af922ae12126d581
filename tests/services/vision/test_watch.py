"""Liveness per track at a mirror: the Hamilton clip through the tracker, passive, challenged
and off, and photo attacks that are asked again and again and never pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from services.vision.dlib_engine import DlibEngine
from services.vision.engine import RGBImage
from services.vision.sightings import follow
from services.vision.tracking import Tracker, TrackSettings
from services.vision.watch import Liveness, LivenessSettings, Mode
from tests.services.vision.attacks import attacks, print_of
from tests.services.vision.support import Photos
from tests.services.vision.test_tracking import Camera

HAMILTON = "video/hamilton"


@pytest.fixture(scope="module")
def clip(photos: Photos) -> dict[int, RGBImage]:
    return {int(Path(relative).stem[-3:]): photos.image(relative)
            for relative in photos.listing(HAMILTON)}


def tracker(mode: Mode, camera: Camera, challenge_after: float = 3.0) -> Tracker:
    settings = TrackSettings(liveness=LivenessSettings(mode=mode,
                                                       challenge_after=challenge_after))
    return Tracker(settings, 0.6, camera)


def show(tracker: Tracker, engine: DlibEngine, camera: Camera,
         images: list[RGBImage]) -> list[Liveness]:
    """Each frame through the tracker; the largest face's liveness on each frame with a face."""
    seen = []
    for image in images:
        planned = tracker.plan("m1")
        tracked = tracker.update(planned, follow(engine, image, planned.plan))
        camera.tick()
        if tracked:
            seen.append(tracked[0].liveness)
    return seen


def frames(clip: dict[int, RGBImage], first: int, last: int) -> list[RGBImage]:
    return [image for number, image in sorted(clip.items()) if first <= number <= last]


def backwards(clip: dict[int, RGBImage], last: int, first: int) -> list[RGBImage]:
    """Frames ``last`` down to ``first``: played backwards, the turn back is a turn away."""
    return frames(clip, first, last)[::-1]


def test_passive_a_turning_head_shows_it_live(
        clip: dict[int, RGBImage], engine: DlibEngine) -> None:
    camera = Camera()
    # Frames 85 to 112: his slow turn away (dlib's own points never pass it; its keypoints do).
    seen = show(tracker(Mode.PASSIVE, camera), engine, camera, frames(clip, 85, 112))
    live = [index for index, each in enumerate(seen) if each.live]
    assert live and live[0] >= 6 and all(each.live for each in seen[live[0]:])  # stays live
    assert seen[-1] == Liveness(True, "passive: the head turned")
    assert all(each.prompt is None for each in seen)  # passive never asks
    # Facing the camera, nearly still: never.
    camera = Camera()
    still = show(tracker(Mode.PASSIVE, camera), engine, camera, frames(clip, 145, 160))
    assert len(still) >= 12 and not any(each.live for each in still)


def test_the_challenge_is_asked_until_met(clip: dict[int, RGBImage], engine: DlibEngine) -> None:
    """Turning either way is also passive evidence, so the track's reason may name either;
    that the frames meet the asked way and fail the other is test_liveness.py's."""
    camera = Camera()
    watch = tracker(Mode.CHALLENGE, camera, challenge_after=0.0)
    asked = show(watch, engine, camera, backwards(clip, 160, 145))  # facing the camera
    prompts = {seen.prompt for seen in asked}
    assert len(asked) >= 12 and not any(seen.live for seen in asked)
    assert len(prompts) == 1 and prompts <= {"turn your head to your left",
                                             "turn your head to your right"}
    met = show(watch, engine, camera, backwards(clip, 144, 120))  # he turns to his right
    live = [index for index, seen in enumerate(met) if seen.live]
    assert live and all(seen.live for seen in met[live[0]:])  # live stays live
    assert {seen.prompt for seen in met[:live[0]]} == prompts  # asked until then
    assert met[-1].prompt is None
    assert met[-1].reason in ("passive: the head turned", "challenge: the head turned right")


def test_off_judges_nothing(clip: dict[int, RGBImage], engine: DlibEngine) -> None:
    camera = Camera()
    seen = show(tracker(Mode.OFF, camera), engine, camera, frames(clip, 132, 143))
    assert set(seen) == {Liveness(None, "liveness is off")}


def test_a_photo_asked_to_turn_never_passes(photos: Photos, engine: DlibEngine) -> None:
    relatives = ["train/obama/obama.jpg", "train/biden/biden.jpg", "test/johnsnow_test1.jpg"]
    stills = [print_of(relative, photos.image(relative), photos.faces(relative)[0])
              for relative in relatives]
    for _, images in attacks(stills, 6, 24, seed=11):
        camera = Camera()
        seen = show(tracker(Mode.CHALLENGE, camera, challenge_after=0.0), engine, camera,
                    images)
        assert len(seen) >= 20
        assert not any(each.live for each in seen)
        assert seen[-1].prompt is not None
