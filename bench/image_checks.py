"""What the upload checks (services/vision/images.py) save on a hostile image, in one run.

a. ``decode_image`` refusing a decompression bomb, a PNG whose few hundred kilobytes inflate
   to 300 MB, and a JPEG of ~360 progressive scans;
b. OpenCV's ``cv2.imdecode`` on the same bytes, the bare operation, which inflates or decodes
   it all and answers a picture.

It prints the median time of each and the ratio b/a: how many refusals fit in the time
OpenCV alone would spend on one such upload::

    .venv/bin/python -m bench.image_checks --rounds 5
"""

from __future__ import annotations

import argparse
import functools
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np

from services.vision.images import ImageError, decode_image
from tests.services.vision.support import inflate_bomb, many_scans_jpeg  # as the tests build them


def median_seconds(work: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def refuse(data: bytes) -> None:
    try:
        decode_image(data)
    except ImageError:
        return
    raise AssertionError("the checks let a hostile image through")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(f"{'upload':<28} {'a: refused':>11} {'b: OpenCV':>10} {'b/a':>8}")
    for name, data in (("PNG 100x100 -> 300 MB", inflate_bomb(100, 100, 300)),
                       ("PNG 2000x2000 -> 300 MB", inflate_bomb(2000, 2000, 300)),
                       ("JPEG of ~360 scans", many_scans_jpeg()[1])):
        ours = median_seconds(functools.partial(refuse, data), args.rounds)
        bare = median_seconds(functools.partial(
            cv2.imdecode, np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), args.rounds)
        print(f"{name:<28} {ours * 1e3:>8.2f} ms {bare * 1e3:>7.1f} ms {bare / ours:>8.0f}")


if __name__ == "__main__":
    main()
