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
5. decoding with OpenCV (``not_an_image`` if it fails), then normalising to 8-bit RGB: grey is
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
    """What the structure walk learned: ``"jpeg"`` or ``"png"``, and the stored dimensions."""

    format: str
    width: int
    height: int


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
    size: tuple[int, int] | None = None
    while pos + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length  # length, type, data, CRC
        if end > len(data):
            break
        if size is None:
            if kind != b"IHDR" or length != 13:
                raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the PNG has no IHDR chunk")
            size = struct.unpack_from(">II", data, pos + 8)
        if kind == b"IEND":
            return ImageHeader("png", size[0], size[1])
        pos = end
    raise _truncated("PNG", "IEND chunk")


def _jpeg_header(data: bytes) -> ImageHeader:
    pos = len(JPEG_SOI)
    size: tuple[int, int] | None = None
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
            return ImageHeader("jpeg", size[1], size[0])
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
        pos += length
        if marker == 0xDA:  # SOS: skip the scan's entropy-coded data
            if size is None:
                raise ImageError(ImageErrorCode.NOT_AN_IMAGE, "the JPEG has no frame header")
            found = _NEXT_MARKER.search(data, pos)
            if found is None:
                raise _truncated("JPEG", "EOI marker")
            pos = found.start()


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
