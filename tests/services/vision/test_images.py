"""Decoding uploads. Every input is a real file: encoded by OpenCV, built with zlib, or cut from
a photo."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from schemas.errors import ServiceError
from services.vision.images import ImageError, ImageErrorCode, ImageLimits, decode_image
from tests.services.vision.support import (
    handmade_png,
    inflate_bomb,
    many_scans_jpeg,
    with_exif_orientation,
)


def encode(extension: str, pixels: np.ndarray, *params: int) -> bytes:
    ok, buffer = cv2.imencode(extension, pixels, list(params))
    assert ok
    return buffer.tobytes()


def refused(data: bytes, limits: ImageLimits | None = None) -> ImageErrorCode:
    with pytest.raises(ImageError) as caught:
        decode_image(data, limits)
    return ImageErrorCode(caught.value.code)


@pytest.fixture
def never_decoded(monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Call it, and from then on OpenCV decoding anything fails the test: what is refused
    from its header or its compressed data alone is refused without OpenCV's work."""
    def decoding(*_: object) -> None:
        pytest.fail("OpenCV was asked to decode an image the checks should have refused")

    return lambda: monkeypatch.setattr(cv2, "imdecode", decoding)


@pytest.fixture(scope="module")
def photo(faces_dir: Path) -> bytes:
    return (faces_dir / "test" / "obama1.jpg").read_bytes()


def two_colours() -> np.ndarray:
    """A 40x60 BGR image: red on the left half, blue on the right."""
    pixels = np.zeros((40, 60, 3), np.uint8)
    pixels[:, :30] = (0, 0, 255)
    pixels[:, 30:] = (255, 0, 0)
    return pixels


@pytest.mark.parametrize("extension", [".jpg", ".png"])
def test_decodes_to_contiguous_rgb(extension: str) -> None:
    image = decode_image(encode(extension, two_colours()))
    assert image.shape == (40, 60, 3) and image.dtype == np.uint8
    assert image.flags.c_contiguous
    assert image[20, 10, 0] > 240 and image[20, 10, 2] < 15  # red first
    assert image[20, 50, 2] > 240 and image[20, 50, 0] < 15


def test_decodes_a_real_photo(photo: bytes) -> None:
    assert decode_image(photo).shape == (832, 1480, 3)


def test_progressive_jpeg_and_restart_markers_walk_and_decode(photo: bytes) -> None:
    pixels = cv2.imdecode(np.frombuffer(photo, np.uint8), cv2.IMREAD_COLOR)
    assert pixels is not None
    progressive = encode(".jpg", pixels, cv2.IMWRITE_JPEG_PROGRESSIVE, 1)
    assert progressive.count(b"\xff\xda") > 1  # several scans
    restarts = encode(".jpg", pixels, cv2.IMWRITE_JPEG_RST_INTERVAL, 4)
    assert b"\xff\xd0" in restarts
    for data in (progressive, restarts):
        assert decode_image(data).shape == (832, 1480, 3)
        assert refused(data[:-2]) is ImageErrorCode.TRUNCATED


def test_empty_and_oversized_uploads(photo: bytes) -> None:
    assert refused(b"") is ImageErrorCode.EMPTY
    assert refused(photo, ImageLimits(max_bytes=len(photo) - 1)) is ImageErrorCode.TOO_LARGE
    assert decode_image(photo, ImageLimits(max_bytes=len(photo))).shape == (832, 1480, 3)


def test_other_formats_and_text_are_not_images() -> None:
    assert refused(b"GIF89a not really") is ImageErrorCode.NOT_AN_IMAGE
    assert refused(encode(".bmp", two_colours())) is ImageErrorCode.NOT_AN_IMAGE
    assert refused(b'{"image": "none"}') is ImageErrorCode.NOT_AN_IMAGE


def test_a_zero_by_zero_png_is_empty() -> None:
    assert refused(handmade_png(0, 0, 8, 2, zlib.compress(b""))) is ImageErrorCode.EMPTY


def test_pixel_limit_is_checked_before_decoding(never_decoded: Callable[[], None]) -> None:
    # 8000x6000 one-bit grey, all black: a valid 48-megapixel PNG in a few kilobytes.
    rows = (b"\x00" + b"\x00" * 1000) * 6000
    bomb = handmade_png(8000, 6000, 1, 0, zlib.compress(rows, 9))
    assert len(bomb) < 20_000
    decoded = cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.shape == (6000, 8000)  # OpenCV would decode it
    never_decoded()
    assert refused(bomb) is ImageErrorCode.TOO_MANY_PIXELS  # from the header


def test_pixel_limit_applies_to_jpeg(photo: bytes) -> None:
    limits = ImageLimits(max_pixels=832 * 1480 - 1)
    assert refused(photo, limits) is ImageErrorCode.TOO_MANY_PIXELS
    assert decode_image(photo, ImageLimits(max_pixels=832 * 1480)).shape == (832, 1480, 3)


@pytest.mark.parametrize("keep", [0.02, 0.5, 0.99])
def test_truncated_jpeg_is_refused(photo: bytes, keep: float) -> None:
    assert refused(photo[: int(len(photo) * keep)]) is ImageErrorCode.TRUNCATED


def test_jpeg_missing_only_its_end_marker_is_refused(photo: bytes) -> None:
    assert photo.endswith(b"\xff\xd9")
    assert refused(photo[:-2]) is ImageErrorCode.TRUNCATED


def test_bytes_after_the_jpeg_end_are_ignored(photo: bytes) -> None:
    # Phones append data after EOI (motion photos, maker trailers).
    assert decode_image(photo + b"\x00" * 64 + b"trailer").shape == (832, 1480, 3)


def test_truncated_png_is_refused() -> None:
    data = encode(".png", two_colours())
    for end in (len(data) // 2, len(data) - 12, 20):
        assert refused(data[:end]) is ImageErrorCode.TRUNCATED


def test_png_with_corrupt_pixel_data_is_not_an_image() -> None:
    garbage = bytes(range(256)) * 4  # not a zlib stream, but every chunk CRC is right
    assert refused(handmade_png(16, 16, 8, 2, garbage)) is ImageErrorCode.NOT_AN_IMAGE


def test_a_png_whose_data_inflates_past_its_rows_is_refused_undecoded(
        never_decoded: Callable[[], None]) -> None:
    never_decoded()
    rows = 2000 * (1 + 3 * 2000)  # what its pixels take: inflating stops past them
    for bomb, because in ((inflate_bomb(100, 100, 300), "more than 100x100 pixels can take"),
                          (inflate_bomb(2000, 2000, 300), f"inflates to more than the {rows}")):
        with pytest.raises(ImageError) as caught:
            decode_image(bomb)
        assert caught.value.code == ImageErrorCode.NOT_AN_IMAGE
        assert because in caught.value.message


def test_opencv_alone_takes_the_bomb_for_a_picture() -> None:
    """Why the check exists: OpenCV inflates the whole 300 MB stream, past the rows it
    declares, and answers an ordinary picture (bench/image_checks.py: what that costs)."""
    bomb = inflate_bomb(100, 100, 300)
    decoded = cv2.imdecode(np.frombuffer(bomb, np.uint8), cv2.IMREAD_UNCHANGED)
    assert decoded is not None and decoded.shape == (100, 100, 3)


def test_png_data_must_match_the_rows_it_declares() -> None:
    rows = (b"\x00" + b"\x7f" * 48) * 16  # 16 rows of 16 RGB pixels, each after a filter byte
    assert decode_image(handmade_png(16, 16, 8, 2, zlib.compress(rows))).shape == (16, 16, 3)
    assert refused(handmade_png(16, 16, 8, 2, zlib.compress(rows[:-1]))) is (
        ImageErrorCode.TRUNCATED)
    assert refused(handmade_png(16, 16, 8, 2, zlib.compress(rows + b"\x00"))) is (
        ImageErrorCode.NOT_AN_IMAGE)
    stored = handmade_png(16, 16, 8, 2, zlib.compress(rows, 0))  # deflate's stored blocks
    assert decode_image(stored).shape == (16, 16, 3)
    padded = handmade_png(16, 16, 8, 2, zlib.compress(rows) + bytes(5000))
    assert refused(padded) is ImageErrorCode.NOT_AN_IMAGE  # data out of proportion


def test_an_interlaced_png_is_measured_pass_by_pass() -> None:
    # 3x3 grey, Adam7: passes 1, 4, 5, 6 and 7 hold 1, 1, 2, 2 and 3 pixels in 1, 1, 1, 2 and 1
    # rows, each row with its filter byte: 2 + 2 + 3 + 4 + 4 = 15 bytes.
    data = handmade_png(3, 3, 8, 0, zlib.compress(bytes(15)), interlace=1)
    assert (decode_image(data) == 0).all()
    assert refused(handmade_png(3, 3, 8, 0, zlib.compress(bytes(14)), interlace=1)) is (
        ImageErrorCode.TRUNCATED)


def test_a_png_of_an_impossible_format_is_not_an_image() -> None:
    assert refused(handmade_png(4, 4, 3, 2, zlib.compress(bytes(52)))) is (
        ImageErrorCode.NOT_AN_IMAGE)


def test_a_jpeg_with_too_many_scans_is_refused_undecoded(
        never_decoded: Callable[[], None]) -> None:
    data, repeated = many_scans_jpeg()
    assert cv2.imdecode(np.frombuffer(repeated, np.uint8), cv2.IMREAD_COLOR) is not None
    assert decode_image(data).shape == (1000, 1000, 3)  # its ~10 scans are fine
    never_decoded()
    with pytest.raises(ImageError) as caught:
        decode_image(repeated)
    assert caught.value.code == ImageErrorCode.NOT_AN_IMAGE and "scans" in caught.value.message


def test_a_tiny_jpeg_with_megabytes_of_scan_data_is_refused() -> None:
    data = encode(".jpg", two_colours())
    padded = data[:-2] + b"\x00" * 1_000_000 + data[-2:]  # inside the scan: no marker in it
    assert refused(padded) is ImageErrorCode.NOT_AN_IMAGE


@pytest.mark.parametrize("extension", [".jpg", ".png"])
def test_grey_becomes_rgb(extension: str) -> None:
    grey = np.tile(np.arange(0, 250, 5, dtype=np.uint8), (20, 1))
    image = decode_image(encode(extension, grey))
    assert image.shape == (20, 50, 3)
    assert (image[:, :, 0] == image[:, :, 1]).all() and (image[:, :, 1] == image[:, :, 2]).all()


def test_sixteen_bit_png_is_scaled_with_rounding() -> None:
    samples = np.array([[0, 128 * 257, 0x8101, 0xFF00, 65535]], np.uint16)
    image = decode_image(encode(".png", samples))
    assert image.dtype == np.uint8
    assert image[0, :, 0].tolist() == [0, 128, 129, 254, 255]  # 0xFF00 >> 8 would be 255


def test_alpha_is_composited_on_white() -> None:
    bgra = np.zeros((1, 3, 4), np.uint8)
    bgra[0, 0] = (0, 0, 0, 0)  # transparent black
    bgra[0, 1] = (0, 0, 255, 255)  # opaque red
    bgra[0, 2] = (0, 0, 0, 128)  # half-transparent black
    image = decode_image(encode(".png", bgra))
    assert image.shape == (1, 3, 3)
    assert image[0].tolist() == [[255, 255, 255], [255, 0, 0], [127, 127, 127]]


def test_sixteen_bit_png_with_alpha() -> None:
    bgra = np.full((2, 2, 4), 65535, np.uint16)
    bgra[..., 3] = 0
    assert (decode_image(encode(".png", bgra)) == 255).all()


def test_the_shared_32_bit_png_loses_its_alpha(faces_dir: Path) -> None:
    assert decode_image((faces_dir / "misc" / "32bit.png").read_bytes()).shape == (1200, 626, 3)


def test_exif_orientation_turns_a_sideways_jpeg_upright() -> None:
    # Stored 60 wide, 40 high; orientation 6 says "rotate 90 degrees clockwise to view".
    data = with_exif_orientation(encode(".jpg", two_colours()), 6)
    image = decode_image(data)
    assert image.shape == (60, 40, 3)
    assert image[5, 20, 0] > 240  # the red half, on the left when stored, is now on top


def test_image_errors_cross_the_wire_as_service_errors(photo: bytes) -> None:
    with pytest.raises(ServiceError) as caught:
        decode_image(photo[:100])
    body = caught.value.to_body()
    assert body.code == "truncated" and "EOI" in body.message
