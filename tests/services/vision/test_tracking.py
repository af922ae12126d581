"""Tracking faces across a mirror's frames: the same names as analysing every frame alone, far
fewer descriptors, and never one track for two people.

On real frames: the 76 consecutive frames of ``video/hamilton`` (one person turning his head),
and streams made of two shared photos of different people, each scaled and moved so that both
faces fill the same box of a 640x360 frame, as when one person steps in for another.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.errors import ConfigError
from services.vision.dlib_engine import DlibEngine
from services.vision.engine import RGBImage
from services.vision.images import decode_image
from services.vision.matcher import Gallery
from services.vision.sightings import FaceChecks, follow, region
from services.vision.tracking import Tracker, TrackSettings
from services.vision.watch import LivenessSettings, Mode
from tests.services.vision.support import Photos

HAMILTON = "video/hamilton"
CAMERA_FPS = 30.0
Names = list[str | None]


class Camera:
    """A clock that moves one frame period each time a frame is planned."""

    def __init__(self, fps: float = CAMERA_FPS) -> None:
        self.now = 0.0
        self.period = 1 / fps

    def __call__(self) -> float:
        return self.now

    def tick(self) -> None:
        self.now += self.period


def run(tracker: Tracker, engine: DlibEngine, gallery: Gallery, mirror_id: str,
        image: RGBImage, camera: Camera | None = None) -> tuple[Names, list[int]]:
    """One frame through the tracker: the names of its faces, largest first, and their tracks."""
    planned = tracker.plan(mirror_id)
    tracked = tracker.update(planned, follow(engine, image, planned.plan))
    if camera is not None:
        camera.tick()
    return [gallery.match(face.face.embedding).name for face in tracked], [
        face.track for face in tracked]


def every_frame(engine: DlibEngine, gallery: Gallery, image: RGBImage) -> Names:
    """Names as before tracking: every face analysed alone, largest first."""
    faces = sorted(engine.analyse(image), key=lambda face: face.box.width * face.box.height,
                   reverse=True)
    return [gallery.match(face.embedding).name for face in faces]


@pytest.fixture(scope="module")
def hamilton(photos: Photos) -> list[RGBImage]:
    frames = [photos.image(relative) for relative in photos.listing(HAMILTON)]
    assert len(frames) == 76
    return frames


@pytest.fixture(scope="module")
def with_lin(photos: Photos, engine: DlibEngine) -> Gallery:
    """The train/ people and the man of the Hamilton clip, from one of its frames."""
    gallery = Gallery(engine.dimension, engine.threshold)
    for relative in photos.listing("train"):
        (face,) = photos.faces(relative)
        gallery.add(Path(relative).parent.name, face.embedding)
    (lin,) = photos.faces(f"{HAMILTON}/frame_100.jpg")
    gallery.add("lin", lin.embedding)
    return gallery


def stand_in(photos: Photos, relative: str, width: int = 640, face_px: int = 110) -> RGBImage:
    """The photo's largest face scaled to ``face_px`` and centred in a ``width`` x 360 frame,
    sent as a mirror would (JPEG)."""
    image = photos.image(relative)
    face = max(photos.faces(relative), key=lambda face: face.box.width)
    scale = face_px / face.box.width
    middle_x, middle_y = (face.box.left + face.box.right) / 2, (face.box.top + face.box.bottom) / 2
    matrix = np.array([[scale, 0, width / 2 - scale * middle_x],
                       [0, scale, 180 - scale * middle_y]])
    frame = cv2.warpAffine(image, matrix, (width, 360), flags=cv2.INTER_AREA,
                           borderMode=cv2.BORDER_REPLICATE)
    return as_sent(frame)


def as_sent(frame: RGBImage) -> RGBImage:
    ok, jpeg = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    assert ok
    return decode_image(jpeg.tobytes())


def test_locate_then_embed_is_analyse(photos: Photos, engine: DlibEngine) -> None:
    for relative in ("test/obama_and_biden.jpg", "test/kit_with_rose.jpg", "misc/obama-240p.jpg"):
        image = photos.image(relative)
        located = engine.locate(image)
        analysed = photos.faces(relative)
        assert [face.box for face in located] == [face.box for face in analysed]
        assert [face.landmarks for face in located] == [face.landmarks for face in analysed]
        for embedding, face in zip(engine.embed(image, located), analysed, strict=True):
            assert np.array_equal(embedding, face.embedding)
    assert engine.embed(photos.image("test/obama1.jpg"), []) == []


def test_a_region_finds_what_the_whole_frame_has_there(
    hamilton: list[RGBImage], engine: DlibEngine
) -> None:
    previous = None
    for image in hamilton:
        whole = engine.locate(image)
        if previous is not None:
            regions = [region(previous, 2.0, image.shape[1], image.shape[0])]
            found = engine.locate(image, regions)
            assert len(found) == len(whole)
            for face, reference in zip(found, whole, strict=True):
                # The same face; its box may come from the next pyramid level (88 or 105 px).
                assert face.box.overlap(reference.box) > 0.6
                gap = math.dist(reference.left_eye, reference.right_eye)
                assert math.dist(face.left_eye, reference.left_eye) < gap / 10
                assert math.dist(face.right_eye, reference.right_eye) < gap / 10
        previous = whole[0].box if whole else previous


def test_the_hamilton_stream_keeps_its_names_with_few_descriptors(
    hamilton: list[RGBImage], engine: DlibEngine, with_lin: Gallery
) -> None:
    camera = Camera()
    tracker = Tracker(TrackSettings(), with_lin.threshold, camera)
    expected = [every_frame(engine, with_lin, image) for image in hamilton]
    assert {name for names in expected for name in names} == {"lin"}
    assert sum(not names for names in expected) == 6  # he turns away from the camera
    tracked = [run(tracker, engine, with_lin, "hall", image, camera)[0] for image in hamilton]
    assert tracked == expected
    stats = tracker.stats
    assert stats.frames == 76 and stats.faces == 70
    assert stats.embedded <= stats.faces // 10, stats  # 2, measured: the start, and after the gap


def test_refresh_renews_the_embedding_every_so_often(
    hamilton: list[RGBImage], engine: DlibEngine, with_lin: Gallery
) -> None:
    camera = Camera()
    tracker = Tracker(TrackSettings(refresh=0.5), with_lin.threshold, camera)
    for image in hamilton:
        assert run(tracker, engine, with_lin, "hall", image, camera)[0] == every_frame(
            engine, with_lin, image)
    # 2.5 s of camera time: the start, a renewal each half second, one after he turned away
    # (5, measured).
    assert 4 <= tracker.stats.embedded < tracker.stats.faces // 3, tracker.stats

    never = Tracker(TrackSettings(refresh=0), with_lin.threshold, Camera())
    for image in hamilton[:10]:
        run(never, engine, with_lin, "hall", image)
    assert never.stats.embedded == never.stats.faces == 10


@pytest.mark.parametrize(("first", "second"), [
    ("test/johnsnow_test1.jpg", "train/rose_leslie/img1.jpg"),  # the most alike faces, measured
    ("test/obama1.jpg", "train/biden/biden.jpg"),
    ("train/obama/obama2.jpg", "train/kit_harington/john2.jpeg"),
])
def test_two_people_taking_turns_are_never_one_track(
    photos: Photos, engine: DlibEngine, enrolled: Gallery, first: str, second: str
) -> None:
    frames = [stand_in(photos, first), stand_in(photos, second)]
    people = [every_frame(engine, enrolled, frame) for frame in frames]
    assert len(people[0]) == len(people[1]) == 1 and people[0] != people[1]
    boxes = [engine.locate(frame)[0].box for frame in frames]
    assert boxes[0].overlap(boxes[1]) > 0.6  # one stands where the other stood
    tracker = Tracker(TrackSettings(), enrolled.threshold, Camera())
    seen_in: dict[int, set[int]] = {}
    for index in range(20):
        names, tracks = run(tracker, engine, enrolled, "hall", frames[index % 2])
        assert names == people[index % 2], f"frame {index}"
        for track in tracks:
            seen_in.setdefault(track, set()).add(index % 2)
    assert all(len(who) == 1 for who in seen_in.values()), seen_in
    # Each of them stands still between turns: that face alone is tracked without descriptors.
    still = Tracker(TrackSettings(), enrolled.threshold, Camera())
    for _ in range(5):
        assert run(still, engine, enrolled, "hall", frames[0])[0] == people[0]
    assert still.stats.embedded == 1


def test_somebody_joining_is_found_at_the_next_whole_frame_scan(
    photos: Photos, engine: DlibEngine, enrolled: Gallery
) -> None:
    left = stand_in(photos, "test/obama1.jpg", width=320, face_px=90)
    right = stand_in(photos, "train/biden/biden.jpg", width=320, face_px=90)
    alone = as_sent(np.hstack([left, np.full_like(right, 128)]))
    together = as_sent(np.hstack([left, right]))
    assert every_frame(engine, enrolled, alone) == ["obama"]
    assert sorted(map(str, every_frame(engine, enrolled, together))) == ["biden", "obama"]
    camera = Camera()
    settings = TrackSettings()
    tracker = Tracker(settings, enrolled.threshold, camera)
    for _ in range(10):
        assert run(tracker, engine, enrolled, "hall", alone, camera)[0] == ["obama"]
    joined = camera.now
    for _ in range(15):
        names = run(tracker, engine, enrolled, "hall", together, camera)[0]
        assert "obama" in names
        if camera.now - joined > settings.scan + camera.period:
            assert sorted(map(str, names)) == ["biden", "obama"]


def test_somebody_leaving_costs_one_whole_frame_scan(
    photos: Photos, engine: DlibEngine, enrolled: Gallery
) -> None:
    left = stand_in(photos, "test/obama1.jpg", width=320, face_px=90)
    right = stand_in(photos, "train/biden/biden.jpg", width=320, face_px=90)
    alone = as_sent(np.hstack([left, np.full_like(right, 128)]))
    together = as_sent(np.hstack([left, right]))
    camera = Camera()
    tracker = Tracker(TrackSettings(scan=1.0), enrolled.threshold, camera)
    for _ in range(3):
        run(tracker, engine, enrolled, "hall", together, camera)
    scans = []
    for _ in range(10):  # biden has gone; his track lingers until it expires
        planned = tracker.plan("hall")
        followed = follow(engine, alone, planned.plan)
        names = [enrolled.match(face.face.embedding).name
                 for face in tracker.update(planned, followed)]
        assert names == ["obama"]
        scans.append(followed.scanned_all)
        camera.tick()
    assert scans[0] and not any(scans[1:]), scans  # the first frame looked for him everywhere


def test_the_mirrors_of_one_worker_are_kept_apart(
    hamilton: list[RGBImage], photos: Photos, engine: DlibEngine, with_lin: Gallery
) -> None:
    stand_ins = [stand_in(photos, "test/johnsnow_test1.jpg"),
                 stand_in(photos, "train/rose_leslie/img1.jpg")]
    expected = {"hall": [every_frame(engine, with_lin, image) for image in hamilton[:20]],
                "door": [every_frame(engine, with_lin, image) for image in stand_ins]}
    camera = Camera()
    tracker = Tracker(TrackSettings(), with_lin.threshold, camera)
    tracks: dict[str, set[int]] = {"hall": set(), "door": set()}
    for index, image in enumerate(hamilton[:20]):
        for mirror_id, frame, want in (("hall", image, expected["hall"][index]),
                                       ("door", stand_ins[index // 4 % 2],
                                        expected["door"][index // 4 % 2])):
            names, ids = run(tracker, engine, with_lin, mirror_id, frame)
            assert names == want, (mirror_id, index)
            tracks[mirror_id].update(ids)
        camera.tick()
    assert not tracks["hall"] & tracks["door"]
    assert len(tracker) == 2 and tracker.tracks("hall") == tracker.tracks("door") == 1


def test_a_frame_without_its_track_starts_one(
    hamilton: list[RGBImage], engine: DlibEngine, with_lin: Gallery
) -> None:
    # Two workers sharing a mirror's frames through $share, here taking every other frame.
    camera = Camera()
    workers = [Tracker(TrackSettings(), with_lin.threshold, camera) for _ in range(2)]
    for index, image in enumerate(hamilton):
        names, _ = run(workers[index % 2], engine, with_lin, "hall", image, camera)
        assert names == every_frame(engine, with_lin, image), index
    # Frames two camera periods apart differ more: 5 and 7 descriptors for 35 faces, measured.
    for worker in workers:
        assert 1 <= worker.stats.embedded <= worker.stats.faces // 3, worker.stats


def test_tracks_are_bounded_and_expire(
    photos: Photos, engine: DlibEngine, enrolled: Gallery
) -> None:
    crowd = photos.image("test/obama_and_biden.jpg")  # three faces
    expected = every_frame(engine, enrolled, crowd)
    camera = Camera()
    # Scanning the whole frame every time, so the face beyond the bound is seen on every frame.
    settings = TrackSettings(max_tracks=2, max_mirrors=2, expire=0.5, scan=0)
    tracker = Tracker(settings, enrolled.threshold, camera)
    for _ in range(3):
        assert run(tracker, engine, enrolled, "hall", crowd, camera)[0] == expected
    assert tracker.tracks("hall") == 2
    assert tracker.stats.embedded == 3 + 1 + 1  # the third face is never kept

    obama = photos.image("test/obama1.jpg")
    for mirror_id in ("door", "porch"):
        run(tracker, engine, enrolled, mirror_id, obama, camera)
    assert len(tracker) == 2 and tracker.tracks("hall") == 0  # the least recently seen went

    # A busy worker's next frame of the door, 3 s on: its face was on the door's last frame,
    # so the track waits for it (TrackSettings.linger)...
    camera.now += 3.0
    assert len(tracker.plan("door").plan.hints) == 1
    # ...but once a frame came without the face, it goes after expire.
    run(tracker, engine, enrolled, "door", np.full((360, 640, 3), 90, np.uint8), camera)
    camera.now += 0.6
    assert tracker.plan("door").plan.hints == ()  # its face has been gone too long
    run(tracker, engine, enrolled, "porch", obama, camera)
    assert len(tracker) == 1 and tracker.tracks("door") == 0  # and so has its mirror
    camera.now += settings.linger + 0.1  # nor does a track wait for ever
    assert tracker.plan("porch").plan.hints == ()


@pytest.mark.parametrize(("first", "second"), [
    ("test/johnsnow_test1.jpg", "train/rose_leslie/img1.jpg"),  # the most alike faces, measured
    ("test/obama1.jpg", "train/biden/biden.jpg"),
])
def test_a_face_that_moved_far_keeps_its_track_and_nobody_else_takes_it(
    photos: Photos, engine: DlibEngine, enrolled: Gallery, first: str, second: str
) -> None:
    """Between two frames a busy worker analysed, the face moved a third of the frame: the
    boxes do not overlap, and the embedding says whether it is the track's person."""
    here = stand_in(photos, first)
    there = {who: as_sent(np.roll(stand_in(photos, who), 220, axis=1)) for who in (first, second)}
    boxes = [engine.locate(frame)[0].box for frame in (here, there[first])]
    assert boxes[0].overlap(boxes[1]) == 0
    camera = Camera(fps=2)  # half a second between the frames analysed
    tracker = Tracker(TrackSettings(), enrolled.threshold, camera)
    (track,) = run(tracker, engine, enrolled, "hall", here, camera)[1]
    assert run(tracker, engine, enrolled, "hall", there[first], camera)[1] == [track]
    assert (tracker.stats.started, tracker.stats.rejoined) == (1, 1)

    camera = Camera(fps=2)
    other = Tracker(TrackSettings(), enrolled.threshold, camera)
    (track,) = run(other, engine, enrolled, "hall", here, camera)[1]
    assert run(other, engine, enrolled, "hall", there[second], camera)[1] != [track]
    assert (other.stats.started, other.stats.rejoined) == (2, 0)

@pytest.mark.parametrize("start", [0, 16, 56])
def test_a_busy_worker_keeps_the_track_long_enough_to_see_the_head_turn(
    hamilton: list[RGBImage], engine: DlibEngine, with_lin: Gallery, start: int
) -> None:
    """A worker that takes 0.5 s a frame sees one frame in six of a 12 fps camera showing the
    clip in a loop: the box jumps as the head turns and the clip starts over, and the frames
    come further apart than ``expire``. The track holds (its face rejoins it, it lingers) and
    gathers the turn: live within 30 frames analysed, measured 8 to 24 over ten starts (before
    tracks rejoined and lingered, a third of such runs were not live within a minute)."""
    clock = Camera()
    tracker = Tracker(TrackSettings(liveness=LivenessSettings(mode=Mode.PASSIVE)),
                      with_lin.threshold, clock)
    for analysed in range(30):
        clock.now = analysed * 0.5
        planned = tracker.plan("hall")
        image = hamilton[(start + analysed * 6) % len(hamilton)]
        tracked = tracker.update(planned, follow(engine, image, planned.plan))
        if tracked and tracked[0].liveness.live:
            break
    else:
        pytest.fail(f"not live in 30 frames: {tracker.stats}")
    assert tracker.stats.started <= analysed // 3, tracker.stats


def test_a_frame_of_another_size_starts_afresh(
    hamilton: list[RGBImage], engine: DlibEngine, with_lin: Gallery
) -> None:
    tracker = Tracker(TrackSettings(), with_lin.threshold, Camera())
    smaller: RGBImage = np.ascontiguousarray(cv2.resize(hamilton[1], (480, 270)), np.uint8)
    for image in (hamilton[0], smaller, smaller):
        assert run(tracker, engine, with_lin, "hall", image)[0] == ["lin"]
    assert tracker.stats.embedded == 2 and tracker.stats.started == 2


def test_no_face_leaves_no_track(engine: DlibEngine, enrolled: Gallery) -> None:
    tracker = Tracker(TrackSettings(), enrolled.threshold, Camera())
    assert run(tracker, engine, enrolled, "hall", np.full((360, 640, 3), 90, np.uint8)) == (
        [], [])
    assert tracker.tracks("hall") == 0


def test_bad_settings_are_refused() -> None:
    for make in (lambda: TrackSettings(refresh=-1), lambda: TrackSettings(expire=0),
                 lambda: TrackSettings(expire=2, linger=1),
                 lambda: TrackSettings(max_tracks=0), lambda: TrackSettings(max_mirrors=0),
                 lambda: FaceChecks(min_overlap=0), lambda: FaceChecks(min_likeness=1.5),
                 lambda: FaceChecks(region=0.5)):
        with pytest.raises(ConfigError):
            make()

