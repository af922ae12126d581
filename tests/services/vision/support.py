"""Helpers the vision tests share: the photo cache, a JPEG EXIF writer, handmade PNGs."""

from __future__ import annotations

import math
import struct
import zlib
from functools import cache
from pathlib import Path

import cv2
import numpy as np

from services.vision.engine import DetectedFace, FaceEngine, RGBImage
from services.vision.images import decode_image


class Photos:
    """The shared photos by path relative to ``faces/``, decoded and analysed at most once."""

    def __init__(self, root: Path, engine: FaceEngine) -> None:
        self.root = root
        self.engine = engine
        self.image = cache(self._image)
        self.faces = cache(self._faces)

    def _image(self, relative: str) -> RGBImage:
        return decode_image((self.root / relative).read_bytes())

    def _faces(self, relative: str) -> list[DetectedFace]:
        return self.engine.analyse(self.image(relative))

    def listing(self, folder: str) -> list[str]:
        """Every photo under ``folder``, as paths relative to ``faces/``, sorted."""
        return sorted(
            str(path.relative_to(self.root))
            for path in (self.root / folder).rglob("*")
            if path.suffix.lower() in {".jpg", ".jpeg", ".png"}
        )


def nose_place(face: DetectedFace) -> tuple[float, float]:
    """Where ``face.nose`` sits, in eye gaps: how far its foot on the eye line lies from the left
    eye towards the right one, and how far it is from that line towards the image's bottom edge
    (towards the chin, on an upright face)."""
    (lx, ly), (rx, ry), (nx, ny) = face.left_eye, face.right_eye, face.nose
    gap = math.dist(face.left_eye, face.right_eye)
    across = ((rx - lx) / gap, (ry - ly) / gap)
    along = ((nx - lx) * across[0] + (ny - ly) * across[1]) / gap
    below = ((ny - ly) * across[0] - (nx - lx) * across[1]) / gap
    return along, below


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """Insert an APP1 Exif segment holding only the Orientation tag (0x0112) after SOI."""
    ifd = struct.pack(">H", 1) + struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + ifd + struct.pack(">I", 0)
    body = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + jpeg[2:]


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def handmade_png(width: int, height: int, bit_depth: int, colour_type: int, idat: bytes,
                 interlace: int = 0) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, interlace)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def zeros_stream(inflated_mb: int) -> bytes:
    """A zlib stream of ``inflated_mb`` MB of zeros, built from one flushed 1 MB piece repeated
    (compressing gigabytes would take the test longer than the attack). Its checksum is wrong;
    a decoder finds that out only after inflating it all."""
    compressor = zlib.compressobj(9)
    megabyte = bytes(1 << 20)
    first = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    piece = compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH)
    assert compressor.compress(megabyte) + compressor.flush(zlib.Z_FULL_FLUSH) == piece
    return first + piece * (inflated_mb - 1) + compressor.flush()


def inflate_bomb(width: int, height: int, inflated_mb: int) -> bytes:
    """An 8-bit RGB PNG of ``width`` x ``height`` whose pixel data inflates to far more."""
    return handmade_png(width, height, 8, 2, zeros_stream(inflated_mb))


def many_scans_jpeg() -> tuple[bytes, bytes]:
    """A black 1000x1000 progressive JPEG (about 10 scans), and the same with its later scans
    40 times over (about 360), which OpenCV decodes scan by scan."""
    ok, buffer = cv2.imencode(".jpg", np.zeros((1000, 1000, 3), np.uint8),
                              [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])
    assert ok
    data = buffer.tobytes()
    starts = [index for index in range(len(data) - 1) if data[index:index + 2] == b"\xff\xda"]
    later_scans = data[starts[1]:data.rindex(b"\xff\xd9")]
    return data, data[:starts[1]] + later_scans * 40 + b"\xff\xd9"

