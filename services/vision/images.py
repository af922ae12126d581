"""Uploaded bytes to an RGB array, refusing what should not reach a decoder.

Only JPEG and PNG are accepted: they are what mirrors send and phones upload, and refusing the
dozen other formats OpenCV can read keeps its less used decoders away from untrusted bytes.

:func:`decode_image` checks, in this order, each failure raising :class:`ImageError`:

1. the byte count against :attr:`ImageLimits.max_bytes` (``empty``, ``too_large``);
2. the format, by its magic number (``not_an_image``);
3. the file's structure, walked without decoding a pixel: PNG chunk by chunk to ``IEND``, JPEG
   segment by segment (and through the entropy-coded data to the next marker) to ``EOI``. This
   gives the width and height from ``IHDR`` or the ``SOFn`` segment, and finds a file that ends
   early (``truncated``). Truncated files are refused rather than decoded partially: OpenCV 5
   refuses most of them anyway, older libjpeg builds fill the missing rows with grey, and
   a half-grey face must not be enrolled. Bytes after ``EOI`` are allowed, since phones append
   data there (motion photos, maker trailers);
4. the dimensions: a zero side is ``empty``, more than :attr:`ImageLimits.max_pixels` is
   ``too_many_pixels``. A 6 KB PNG can declare 50 megapixels, so this comes before decoding;
5. that the data fits the dimensions (``not_an_image``, or ``truncated`` for too little), since
   a decoder's time grows with the data, not with the pixels it declares. OpenCV 5 inflates a
   PNG's whole zlib stream even past the last row: an 8 MB PNG of 100x100 pixels whose stream
   inflates to 8 GB held a worker for 20 s. So a PNG's ``IDAT`` data may be at most a little
   larger than the rows it encodes (:data:`_PNG_STORED_SLACK`), and its stream is inflated here,
   in 1 MB steps into nothing, and must end at exactly the bytes those rows take; inflating
   stops at one byte past them, so a bomb costs what its declared pixels would. A JPEG may have
   at most :data:`MAX_JPEG_SCANS` scans (each progressive scan is a pass over every block:
   1,800 scans of a 16-megapixel frame took 9 s) and at most :data:`_JPEG_BYTES_PER_PIXEL`
   bytes of scan data a pixel (quality 100 noise takes about 4). Metadata segments (EXIF, ICC)
   and bytes after ``EOI`` do not count;
6. decoding with OpenCV (``not_an_image`` if it fails), then normalising to 8-bit RGB: grey is
   expanded, 16-bit samples are scaled to 8 bits with rounding, and an alpha channel is
   composited on white (transparent pixels often hide black, which would look like a dark face).

JPEGs are decoded with ``IMREAD_COLOR``, which honours the EXIF orientation tag (phones store
portraits sideways and set that tag; ``IMREAD_UNCHANGED`` would ignore it and the detector would
see a face lying on its side), then swapped from BGR to RGB. ``IMREAD_COLOR_RGB`` would save the
swap but needs OpenCV 4.11, and the project allows 4.10. PNGs are decoded with
``IMREAD_UNCHANGED`` so that 16-bit depth and alpha arrive intact for the normalisation above.
"""

from __future__ import annotations

import re
import struct
import zlib
from dataclasses import dataclass
from enum import StrEnum

import cv2
import numpy as np
import numpy.typing as npt

from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from schemas.vision import VisionError
from services.vision.engine import RGBImage

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SOI = b"\xff\xd8"
# Start-of-frame markers carry the dimensions; C4 (DHT), C8 (JPG) and CC (DAC) share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# After SOS the entropy-coded data runs until an 0xFF that is neither stuffing (FF 00), a restart
# marker (FF D0..D7) nor fill (FF FF): that byte starts the next marker.
_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")

MAX_JPEG_SCANS = 64  # libjpeg's progressive script has 10; baseline files have 1 to 3
_JPEG_BYTES_PER_PIXEL = 16
_JPEG_SLACK = 64 * 1024  # table and header segments of a tiny image
# Deflate's stored blocks add 5 bytes in 65535 and fixed Huffman codes at most 1/8: a PNG's data
# is never more than 9/8 of its rows' bytes, plus the zlib header and trailer.
_PNG_STORED_SLACK = 1024
_INFLATE_STEP = 1 << 20  # output bytes per inflate call
_INFLATE_FEED = 1 << 16  # input bytes per inflate call; keeps each unconsumed tail copy small
# Channels per PNG colour type (grey, RGB, palette, grey + alpha, RGBA) and their bit depths.
_PNG_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}
_PNG_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
# Adam7 passes: first column, first row, column step, row step.
_ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
          (0, 1, 1, 2))


class ImageErrorCode(StrEnum):
    """The codes of :class:`ImageError`: the image codes of :class:`VisionError`, and the common
    ``too_large``."""

    EMPTY = VisionError.EMPTY.value
    TOO_LARGE = ErrorCode.TOO_LARGE.value
    TOO_MANY_PIXELS = VisionError.TOO_MANY_PIXELS.value
    NOT_AN_IMAGE = VisionError.NOT_AN_IMAGE.value
    TRUNCATED = VisionError.TRUNCATED.value


class ImageError(ServiceError):
    """An upload that cannot be used as an image; ``code`` is an :class:`ImageErrorCode`."""

    def __init__(self, code: ImageErrorCode, message: str) -> None:
        super().__init__(code, message)


@dataclass(frozen=True)
class ImageLimits:
    """Upper bounds on an upload: 20 MB and 40 megapixels by default. A 12 MP phone photo passes;
    at the pixel limit the largest decoded array (16-bit RGBA) takes 320 MB."""

    max_bytes: int = 20_000_000
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class ImageHeader:
    """What the structure walk learned: ``"jpeg"`` or ``"png"``, the stored dimensions, and
    where the pixel data is: a PNG's ``IDAT`` spans (start, end) and the bytes its rows take
    once inflated, a JPEG's scan count and scan bytes."""

    format: str
    width: int
    height: int
    idat: tuple[tuple[int, int], ...] = ()
    inflated_size: int = 0
    scans: int = 0
    scan_bytes: int = 0


def decode_image(data: bytes, limits: ImageLimits | None = None) -> RGBImage:
    """Decode a JPEG or PNG to a C-contiguous ``(height, width, 3)`` uint8 RGB array."""
    limits = limits or ImageLimits()
    if not data:
        raise ImageError(ImageErrorCode.EMPTY, "the upload is empty")
    if len(data) > limits.max_bytes:
        raise ImageError(
            ImageErrorCode.TOO_LARGE,
            f"the image is {len(data)} bytes; the limit is {limits.max_bytes}",
        )
    header = read_header(data)
    if header.width == 0 or header.height == 0:
        raise ImageError(
            ImageErrorCode.EMPTY, f"the image is {header.width}x{header.height} pixels"
        )
    if header.width * header.height > limits.max_pixels:
        raise ImageError(
            ImageErrorCode.TOO_MANY_PIXELS,
            f"the image is {header.width}x{header.height} pixels; "
            f"the limit is {limits.max_pixels} pixels",
        )
    if header.format == "png":
        _check_png_data(data, header)
    else:
        _check_jpeg_scans(header)
    flags = cv2.IMREAD_COLOR if header.format == "jpeg" else cv2.IMREAD_UNCHANGED
    try:
        decoded = cv2.imdecode(np.frombuffer(data, np.uint8), flags)
    except cv2.error as exc:
        raise ImageError(
            ImageErrorCode.NOT_AN_IMAGE, f"the {header.format.upper()} could not be decoded"
        ) from exc
    if decoded is None:
        raise ImageError(
            ImageErrorCode.NOT_AN_IMAGE, f"the {header.format.upper()} could not be decoded"
        )
    if header.format == "jpeg":
        return np.ascontiguousarray(cv2.cvtColor(decoded, cv2.COLOR_BGR2RGB), dtype=np.uint8)
    return _png_to_rgb(decoded)


def read_header(data: bytes) -> ImageHeader:
    """Walk a JPEG or PNG without decoding it; see the module docstring for what is checked."""
    if data.startswith(PNG_SIGNATURE):
        return _png_header(data)
    if data.startswith(JPEG_SOI):
        return _jpeg_header(data)
    raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the upload is not a JPEG or PNG image")


def _truncated(kind: str, last: str) -> ImageError:
    return ImageError(ImageErrorCode.TRUNCATED, f"the {kind} data stops before its {last}")


def _png_header(data: bytes) -> ImageHeader:
    pos = len(PNG_SIGNATURE)
    ihdr: tuple[int, int, int] | None = None  # width, height, inflated size
    idat: list[tuple[int, int]] = []
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            break
        if ihdr is None:
            if kind != b"IHDR" or length != 13:
                raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the PNG has no IHDR chunk")
            ihdr = _png_ihdr(data, pos + 8)
        if kind == b"IDAT":
            idat.append((pos + 8, end - 4))
        if kind == b"IEND":
            width, height, inflated = ihdr
            return ImageHeader("png", width, height, idat=tuple(idat), inflated_size=inflated)
        pos = end
    raise _truncated("PNG", "IEND chunk")


def _png_ihdr(data: bytes, pos: int) -> tuple[int, int, int]:
    """Width, height, and the bytes its filtered rows take (each row has a filter byte)."""
    width, height, depth, colour, _, _, interlace = struct.unpack_from(">IIBBBBB", data, pos)
    if depth not in _PNG_DEPTHS.get(colour, ()) or interlace not in (0, 1):
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE,
                         f"the PNG declares an impossible format (colour type {colour}, "
                         f"bit depth {depth}, interlace {interlace})")
    bits = depth * _PNG_CHANNELS[colour]
    passes = _ADAM7 if interlace else ((0, 0, 1, 1),)
    inflated = 0
    for first_x, first_y, step_x, step_y in passes:
        columns = (width - first_x + step_x - 1) // step_x if width > first_x else 0
        rows = (height - first_y + step_y - 1) // step_y if height > first_y else 0
        if columns and rows:
            inflated += rows * (1 + (columns * bits + 7) // 8)
    return width, height, inflated


def _check_png_data(data: bytes, header: ImageHeader) -> None:
    """The ``IDAT`` stream must inflate to exactly the bytes of the declared rows."""
    expected = header.inflated_size
    stored = sum(end - start for start, end in header.idat)
    size = f"{header.width}x{header.height}"
    if stored > expected + expected // 8 + _PNG_STORED_SLACK:
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE,
                         f"the PNG holds {stored} bytes of pixel data, more than {size} "
                         "pixels can take")
    inflater = zlib.decompressobj()
    produced = 0
    view = memoryview(data)
    try:
        for start, end in header.idat:
            for feed in range(start, end, _INFLATE_FEED):
                pending: bytes | memoryview = view[feed:min(feed + _INFLATE_FEED, end)]
                while pending and not inflater.eof:
                    produced += len(inflater.decompress(pending, _INFLATE_STEP))
                    if produced > expected:
                        raise ImageError(
                            ImageErrorCode.NOT_AN_IMAGE,
                            f"the PNG's pixel data inflates to more than the {expected} bytes "
                            f"that {size} pixels take",
                        )
                    pending = inflater.unconsumed_tail
    except zlib.error as exc:
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE,
                         f"the PNG's pixel data is not a valid zlib stream ({exc})") from exc
    if produced < expected:
        raise _truncated("PNG", "last row")


def _check_jpeg_scans(header: ImageHeader) -> None:
    if header.scans > MAX_JPEG_SCANS:
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE,
                         f"the JPEG has {header.scans} scans; at most {MAX_JPEG_SCANS} are "
                         "accepted")
    pixels = header.width * header.height
    if header.scan_bytes > pixels * _JPEG_BYTES_PER_PIXEL + _JPEG_SLACK:
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE,
                         f"the JPEG holds {header.scan_bytes} bytes of scan data, more than "
                         f"{header.width}x{header.height} pixels can take")


def _jpeg_header(data: bytes) -> ImageHeader:
    pos = len(JPEG_SOI)
    size: tuple[int, int] | None = None
    scans = scan_bytes = 0
    while True:
        # Markers are 0xFF, any fill 0xFFs, then the marker byte. libjpeg skips stray bytes
        # before a marker, so we do too.
        pos = data.find(b"\xff", pos)
        while 0 <= pos < len(data) and data[pos] == 0xFF:
            pos += 1
        if pos < 0 or pos >= len(data):
            raise _truncated("JPEG", "EOI marker")
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            if size is None:
                raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the JPEG has no frame header")
            return ImageHeader("jpeg", size[1], size[0], scans=scans, scan_bytes=scan_bytes)
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # standalone markers carry no length
            continue
        if pos + 2 > len(data):
            raise _truncated("JPEG", "EOI marker")
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2:
            raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the JPEG has a malformed segment")
        if pos + length > len(data):
            raise _truncated("JPEG", "EOI marker")
        if marker in _JPEG_SOF:
            if length < 7:
                raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the JPEG has a malformed frame")
            size = struct.unpack_from(">HH", data, pos + 3)  # after precision: height, width
        start = pos
        pos += length
        if marker == 0xDA:  # SOS: skip the scan's entropy-coded data
            if size is None:
                raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the JPEG has no frame header")
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                raise _truncated("JPEG", "EOI marker")
            pos = found.start()
            scans += 1
            scan_bytes += pos - start


def _png_to_rgb(decoded: cv2.typing.MatLike) -> RGBImage:
    pixels = np.asarray(decoded)
    if pixels.dtype == np.uint16:
        # Scale by 255/65535 (1/257) and round; a shift by 8 can be a level off (0xFF00 gives 255).
        # OpenCV does it in one pass, without numpy's widened temporaries.
        pixels = np.asarray(cv2.convertScaleAbs(decoded, alpha=1 / 257))
    if pixels.dtype != np.uint8:
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE, f"unsupported PNG sample type {pixels.dtype}")
    eight_bit: npt.NDArray[np.uint8] = pixels.astype(np.uint8, copy=False)
    channels = 1 if eight_bit.ndim == 2 else eight_bit.shape[2]
    if channels == 1:
        rgb = cv2.cvtColor(eight_bit.reshape(eight_bit.shape[:2]), cv2.COLOR_GRAY2RGB)
    elif channels == 2:  # grey + alpha
        grey = _on_white(eight_bit[:, :, :1], eight_bit[:, :, 1:])
        rgb = cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)
    elif channels == 3:
        rgb = cv2.cvtColor(eight_bit, cv2.COLOR_BGR2RGB)
    elif channels == 4:
        rgb = cv2.cvtColor(_on_white(eight_bit[:, :, :3], eight_bit[:, :, 3:]), cv2.COLOR_BGR2RGB)
    else:
        raise ImageError(ImageErrorCode.NOT_AN_IMAGE, f"unsupported PNG with {channels} channels")
    return np.ascontiguousarray(rgb, dtype=np.uint8)


def _on_white(colour: npt.NDArray[np.uint8], alpha: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Composite on white in integers; c*a + 255*(255-a) + 127 fits in uint16."""
    if alpha.min() == 255:  # the usual case: an alpha channel with nothing transparent
        return np.ascontiguousarray(colour)
    a = alpha.astype(np.uint16)
    mixed = colour.astype(np.uint16)
    mixed *= a
    mixed += 255 * (255 - a) + 127
    mixed //= 255
    return mixed.astype(np.uint8)
