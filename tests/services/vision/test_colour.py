"""Personal colour on the shared photos: warmer skin reads warmer, darker skin deeper, and a
warm light over the whole frame counts for less than the same warmth in the skin alone."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from services.vision.colour import Depth, Season, Undertone, analyse_tone, skin_regions
from services.vision.engine import Box, DetectedFace, RGBImage
from tests.services.vision.support import Photos

FOLDERS = ("train", "test", "misc")
WARM_LIGHT = (1.1, 1.0, 0.8)


def every_face(photos: Photos) -> list[tuple[str, DetectedFace]]:
    return [
        (relative, face)
        for folder in FOLDERS
        for relative in photos.listing(folder)
        for face in photos.faces(relative)
    ]


def region_of(image: RGBImage, box: Box | None) -> RGBImage:
    if box is None:
        return image
    inside = box.clipped(image.shape[1], image.shape[0])
    return image[inside.top : inside.bottom, inside.left : inside.right]


def yellower(image: RGBImage, box: Box, delta_b: float) -> RGBImage:
    """A copy with ``delta_b`` added to CIELAB b* inside ``box``: yellower skin, same light."""
    out = image.copy()
    region = region_of(out, box)
    lab = cv2.cvtColor(region.astype(np.float32) / 255, cv2.COLOR_RGB2Lab)
    lab[..., 2] += delta_b
    rgb = cv2.cvtColor(lab, cv2.COLOR_Lab2RGB)
    region[...] = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint8)
    return out


def lit(image: RGBImage, box: Box | None, gains: tuple[float, float, float]) -> RGBImage:
    """A copy with linear RGB scaled by ``gains`` inside ``box`` (everywhere if None): the same
    scene under a differently coloured light."""
    out = image.copy()
    region = region_of(out, box)
    srgb = region.astype(np.float32) / 255
    linear = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    linear = np.clip(linear * np.asarray(gains, dtype=np.float32), 0, 1)
    encoded = np.where(linear <= 0.0031308, linear * 12.92, 1.055 * linear ** (1 / 2.4) - 0.055)
    region[...] = np.clip(np.round(encoded * 255), 0, 255).astype(np.uint8)
    return out


def test_yellower_skin_reads_warmer(photos: Photos) -> None:
    increases = []
    for relative, face in every_face(photos):
        image = photos.image(relative)
        before = analyse_tone(image, face).warmth_score
        after = analyse_tone(yellower(image, face.box, 6.0), face).warmth_score
        assert after > before, relative
        increases.append(after - before)
    assert np.mean(increases) > 3.0


@pytest.mark.parametrize(
    "relative",
    [
        "misc/obama-1080p.jpg",
        "train/biden/biden2.jpg",
        "train/rose_leslie/img1.jpg",
        "test/obama_and_biden.jpg",
    ],
)
def test_a_warm_light_counts_for_less_than_warm_skin(photos: Photos, relative: str) -> None:
    image = photos.image(relative)
    face = photos.faces(relative)[0]
    before = analyse_tone(image, face).warmth_score
    skin_only = analyse_tone(lit(image, face.box, WARM_LIGHT), face).warmth_score - before
    whole_frame = analyse_tone(lit(image, None, WARM_LIGHT), face).warmth_score - before
    assert skin_only > 0
    assert whole_frame < 0.7 * skin_only


def test_darker_photos_read_deeper(photos: Photos) -> None:
    for relative, face in every_face(photos):
        image = photos.image(relative)
        result = analyse_tone(image, face)
        if result.lab_median[0] < 20:
            # The low-scoring third face in obama_and_biden.jpg lies in deep shadow (L* 7):
            # darkening it only crushes more pixels below L* 5, and the rest read lighter.
            continue
        before = result.depth_score
        gamma = np.round(255 * (image / 255) ** 1.6).astype(np.uint8)
        assert analyse_tone(gamma, face).depth_score > before, relative
        skin = lit(image, face.box, (0.5, 0.5, 0.5))
        assert analyse_tone(skin, face).depth_score > before, relative


def test_a_much_darker_face_turns_deep(photos: Photos) -> None:
    image = photos.image("train/biden/biden2.jpg")
    (face,) = photos.faces("train/biden/biden2.jpg")
    assert analyse_tone(image, face).depth is Depth.LIGHT
    darker = np.round(255 * (image / 255) ** 1.6).astype(np.uint8)
    assert analyse_tone(darker, face).depth is Depth.DEEP


def test_results_are_deterministic(photos: Photos) -> None:
    image = photos.image("test/obama_and_biden.jpg")
    for face in photos.faces("test/obama_and_biden.jpg"):
        assert analyse_tone(image, face) == analyse_tone(image.copy(), face)


def test_season_follows_undertone_and_depth(photos: Photos) -> None:
    seasons = {
        (Undertone.WARM, Depth.LIGHT): Season.SPRING,
        (Undertone.COOL, Depth.LIGHT): Season.SUMMER,
        (Undertone.WARM, Depth.DEEP): Season.AUTUMN,
        (Undertone.COOL, Depth.DEEP): Season.WINTER,
    }
    for relative, face in every_face(photos):
        result = analyse_tone(photos.image(relative), face)
        assert result.season is seasons[result.undertone, result.depth]
        assert result.tone == result.season.value
        assert (result.undertone is Undertone.WARM) == (result.warmth_score >= 0)
        assert (result.depth is Depth.DEEP) == (result.depth_score >= 0)


def test_regions_are_clipped_to_the_image(photos: Photos) -> None:
    image = photos.image("misc/obama_partial_face.jpg")
    (face,) = photos.faces("misc/obama_partial_face.jpg")
    height, width = image.shape[:2]
    regions = skin_regions(face, width, height)
    assert regions
    for box in regions:
        assert 0 <= box.left < box.right <= width and 0 <= box.top < box.bottom <= height
    assert analyse_tone(image, face).tone in {season.value for season in Season}


def test_a_face_outside_the_image_is_refused() -> None:
    image = np.full((100, 100, 3), 128, dtype=np.uint8)
    points = ((530.0, 500.0), (520.0, 500.0), (480.0, 500.0), (490.0, 500.0), (505.0, 520.0))
    face = DetectedFace(Box(470, 470, 540, 540), points, np.zeros(128, np.float32), 1.0,
                        left_eye=(485.0, 500.0), right_eye=(525.0, 500.0), nose=(505.0, 520.0))
    with pytest.raises(ValueError, match="outside"):
        analyse_tone(image, face)
