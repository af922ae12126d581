"""What liveness costs per frame against the engine's analyse time, on ``video/hamilton``.

Liveness reads the points the tracker finds on every frame anyway: with dlib, the keypoints
MTCNN's two small networks place in each face's box (services/vision/keypoints.py), which are
timed alone; then its own cost is the pose of each face
(:func:`services.vision.liveness.pose`) and a track's verdict over its last frames
(:class:`services.vision.watch.Watch`: on keypoints, two homographies fitted per pair of
frames). Both are timed on the clip's real points, and on dlib's own five points (a face
without keypoints), against :meth:`DlibEngine.analyse` (detection, landmarks, keypoints and
descriptor) of the same frames. The insightface engine's cues are the keypoint ones: the
arithmetic is the same whatever engine found the points.

    .venv/bin/python bench/liveness.py [--faces DIR] [--rounds 5]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from pathlib import Path

from services.vision.dlib_engine import DlibEngine
from services.vision.engine import LocatedFace, Point, RGBImage
from services.vision.images import decode_image
from services.vision.keypoints import Keypoints
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


def time_keypoints(keypoints: Keypoints, images: list[RGBImage],
                   faces: list[LocatedFace]) -> float:
    start = time.perf_counter()
    for image, face in zip(images, faces, strict=True):
        keypoints.find(image, face.box)
    return per_frame_ms(time.perf_counter() - start, len(faces))


def shifted(face: LocatedFace, dx: float) -> LocatedFace:
    """``face`` moved ``dx`` pixels right: every cue is the same, the points are new."""
    def move(point: Point) -> Point:
        return point[0] + dx, point[1]

    return LocatedFace(box=face.box, landmarks=tuple(map(move, face.landmarks)),
                       score=face.score, left_eye=move(face.left_eye),
                       right_eye=move(face.right_eye), nose=move(face.nose),
                       keypoints=face.keypoints and tuple(map(move, face.keypoints)))


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
        found = [(image, faces[0]) for image in images if (faces := engine.locate(image))]
        analyse = [time_analyse(engine, images) for _ in range(args.rounds)]
    faces = [face for _, face in found]
    keypoints = Keypoints()
    timed = [[time_keypoints(keypoints, [image for image, _ in found], faces),
              time_liveness(faces),
              time_liveness([dataclasses.replace(face, keypoints=None) for face in faces])]
             for _ in range(args.rounds)]
    a = statistics.median(analyse)
    k, b, c = (statistics.median(column) for column in zip(*timed, strict=True))
    print(f"{len(images)} frames of 640x360, {len(faces)} with a face, {args.rounds} rounds")
    print(f"engine analyse    {a:8.3f} ms a frame (keypoints included)")
    print(f"keypoints         {k:8.3f} ms a face (MTCNN's two networks)    ratio {k / a:.4f}")
    print(f"liveness          {b:8.3f} ms a frame (pose + verdict of one track, on keypoints)"
          f"    ratio {b / a:.4f}")
    print(f"dlib's own points {c:8.3f} ms a frame (a face without keypoints)"
          f"    ratio {c / a:.4f}")


if __name__ == "__main__":
    main()
