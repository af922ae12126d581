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
import zlib
from collections.abc import Callable

import cv2
import numpy as np

from services.vision.images import ImageError, decode_image


def png_bomb(side: int, inflated_mb: int) -> bytes:
    """An RGB PNG of ``side`` x ``side`` whose data is ``inflated_mb`` MB of zeros."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (len(body).to_bytes(4, "big") + kind + body
                + zlib.crc32(kind + body).to_bytes(4, "big"))

    header = side.to_bytes(4, "big") * 2 + bytes([8, 2, 0, 0, 0])
    compressor = zlib.compressobj(9)
    zeros = bytes(1 << 20)
    data = b"".join(compressor.compress(zeros) for _ in range(inflated_mb)) + compressor.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data)
            + chunk(b"IEND", b""))


def jpeg_of_many_scans() -> bytes:
    ok, buffer = cv2.imencode(".jpg", np.zeros((1000, 1000, 3), np.uint8),
                              [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    data = buffer.tobytes()
    second = data.index(b"\xff\xda", data.index(b"\xff\xda") + 2)
    return data[:second] + data[second:data.rindex(b"\xff\xd9")] * 40 + b"\xff\xd9"


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
    for name, data in (("PNG 100x100 -> 300 MB", png_bomb(100, 300)),
                       ("PNG 2000x2000 -> 300 MB", png_bomb(2000, 300)),
                       ("JPEG of ~360 scans", jpeg_of_many_scans())):
        ours = median_seconds(functools.partial(refuse, data), args.rounds)
        bare = median_seconds(functools.partial(
            cv2.imdecode, np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), args.rounds)
        print(f"{name:<28} {ours * 1e3:>8.2f} ms {bare * 1e3:>7.1f} ms {bare / ours:>8.0f}")


if __name__ == "__main__":
    main()
