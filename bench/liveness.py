"""What liveness costs per frame against the engine's analyse time, on ``video/hamilton``.

Liveness reads the landmarks the tracker finds on every frame anyway, so its own cost is the
pose of each face (:func:`services.vision.liveness.pose`) and a track's verdict over its last
frames (:class:`services.vision.watch.Watch`). Both are timed on the clip's real landmarks,
against :meth:`DlibEngine.analyse` (detection, landmarks and descriptor) of the same frames.
The insightface engine's cues (SCRFD's five points: two homographies fitted per pair of
frames) are timed too, on points in SCRFD's layout made from dlib's: the eye centres, the
nose, and mouth corners placed below the eyes. The arithmetic is the same whatever the points.

    .venv/bin/python bench/liveness.py [--faces DIR] [--rounds 5]
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from pathlib import Path

from services.vision.dlib_engine import DlibEngine
from services.vision.engine import LocatedFace, Point, RGBImage
from services.vision.images import decode_image
from services.vision.watch import LivenessSettings, Watch

FACES = Path(__file__).resolve().parents[1].parent / "shared" / "faces"


def per_frame_ms(seconds: float, frames: int) -> float:
    return 1000 * seconds / frames


def time_analyse(engine: DlibEngine, images: list[RGBImage]) -> float:
    start = time.perf_counter()
    for image in images:
        engine.analyse(image)
    return per_frame_ms(time.perf_counter() - start, len(images))


def time_liveness(faces: list[LocatedFace], repeat: int = 50) -> float:
    """One watch per pass over the clip, as one track at a mirror; ``repeat`` passes, each on
    the faces moved by a pixel more, so no pass finds what the one before kept
    (services/vision/liveness.py keeps the plane cues of recent pairs of frames)."""
    passes = [[shifted(face, float(number)) for face in faces] for number in range(repeat)]
    start = time.perf_counter()
    for moved in passes:
        watch = Watch(LivenessSettings(), 0.0)
        for number, face in enumerate(moved):
            watch.see(face, number / 30)
            watch.live = False  # keep judging: a live track would stop here
    return per_frame_ms(time.perf_counter() - start, repeat * len(faces))


def shifted(face: LocatedFace, dx: float) -> LocatedFace:
    """``face`` moved ``dx`` pixels right: every cue is the same, the points are new."""
    def move(point: Point) -> Point:
        return point[0] + dx, point[1]

    return LocatedFace(box=face.box, landmarks=tuple(map(move, face.landmarks)),
                       score=face.score, left_eye=move(face.left_eye),
                       right_eye=move(face.right_eye), nose=move(face.nose))


def scrfd_like(face: LocatedFace) -> LocatedFace:
    """``face`` with five points in SCRFD's layout (for timing only: see the module docstring)."""
    (lx, ly), (rx, ry) = face.left_eye, face.right_eye
    drop = 0.9 * math.hypot(rx - lx, ry - ly)
    mouth = ((lx + 0.1 * (rx - lx), ly + drop), (rx - 0.1 * (rx - lx), ry + drop))
    landmarks = (face.left_eye, face.right_eye, face.nose, *mouth)
    return LocatedFace(box=face.box, landmarks=landmarks, score=face.score,
                       left_eye=face.left_eye, right_eye=face.right_eye, nose=face.nose)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=Path, default=FACES)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    paths = sorted((args.faces / "video" / "hamilton").glob("*.jpg"))
    if not paths:
        raise SystemExit(f"no frames in {args.faces / 'video' / 'hamilton'}")
    images = [decode_image(path.read_bytes()) for path in paths]
    with DlibEngine() as engine:
        faces = [found[0] for image in images if (found := engine.locate(image))]
        analyse = [time_analyse(engine, images) for _ in range(args.rounds)]
    liveness = [time_liveness(faces) for _ in range(args.rounds)]
    scrfd = [time_liveness([scrfd_like(face) for face in faces]) for _ in range(args.rounds)]
    a, b, c = statistics.median(analyse), statistics.median(liveness), statistics.median(scrfd)
    print(f"{len(images)} frames of 640x360, {len(faces)} with a face, {args.rounds} rounds")
    print(f"engine analyse  {a:8.3f} ms a frame")
    print(f"liveness        {b:8.3f} ms a frame (pose + verdict of one track)")
    print(f"ratio           {b / a:8.4f}")
    print(f"SCRFD's cues    {c:8.3f} ms a frame (the plane and the nose parallax)")
    print(f"ratio           {c / a:8.4f}")


if __name__ == "__main__":
    main()
