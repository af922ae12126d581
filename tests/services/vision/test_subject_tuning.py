"""The gallery's per-subject thresholds, "not me" negatives and nearest-subjects search, on
small handmade vectors whose distances are plain to see."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.vision.matcher import Gallery


def point(*xs: float) -> np.ndarray:
    return np.array(xs, dtype=np.float32)


@pytest.fixture
def gallery() -> Gallery:
    found = Gallery(2, threshold=1.0)
    found.add("ann", point(0, 0))
    found.add("ann", point(0, 0.5))
    found.add("bob", point(3, 0))
    return found


def test_a_subjects_own_threshold_replaces_the_gallerys(gallery: Gallery) -> None:
    assert gallery.match(point(1.5, 0)).name is None  # 1.5 from both
    gallery.tune("bob", 1.6)
    near = gallery.match(point(1.6, 0))
    assert (near.name, round(near.distance, 4), near.bound) == ("bob", 1.4, False)
    assert gallery.threshold_of("bob") == 1.6 and gallery.threshold_of("ann") == 1.0
    gallery.tune("ann", 0.2)
    assert gallery.match(point(0, -0.3)).name is None  # ann is nearest, but not within 0.2
    gallery.tune("bob", None)
    assert gallery.threshold_of("bob") == 1.0
    with pytest.raises(ValueError, match="positive"):
        gallery.tune("bob", 0)


def test_a_face_nearer_to_a_negative_is_not_the_subject(gallery: Gallery) -> None:
    impostor = point(0.8, 0)
    assert gallery.match(impostor).name == "ann"
    gallery.tune("ann", None, [point(0.9, 0)])
    assert gallery.negatives("ann") == 1
    refused = gallery.match(point(0.7, 0))  # 0.7 from ann, 0.2 from her negative
    assert (refused.name, round(refused.distance, 4)) == (None, 0.7)
    assert gallery.match(point(0.1, 0.1)).name == "ann"  # ann herself still is
    assert gallery.remove("ann") == 2 and gallery.negatives("ann") == 0
    with pytest.raises(ValueError, match="finite vectors"):
        gallery.tune("bob", None, [point(1, 2, 3)])


def test_nearest_lists_subjects_within_their_thresholds_nearest_first(gallery: Gallery) -> None:
    assert gallery.nearest(point(1.4, 0), 5) == []
    gallery.tune("bob", 2.0)
    gallery.tune("ann", 1.5)
    found = gallery.nearest(point(1.4, 0), 5)
    assert [(m.name, round(m.distance, 4)) for m in found] == [("ann", 1.4), ("bob", 1.6)]
    assert [m.name for m in gallery.nearest(point(1.4, 0), 1)] == ["ann"]
    gallery.tune("ann", 1.5, [point(1.5, 0)])
    assert [m.name for m in gallery.nearest(point(1.4, 0), 5)] == ["bob"]
    assert Gallery(2, 1.0).nearest(point(0, 0), 5) == []
    far = gallery.nearest(point(100, 100), 5)
    assert far == [] and math.isfinite(gallery.match(point(100, 100)).distance)
