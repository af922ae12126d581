"""The gallery against a brute-force nearest neighbour, on random data."""

from __future__ import annotations

import math

import numpy as np
import pytest

from services.vision.matcher import Gallery, Match

DIMENSION = 128
THRESHOLD = 0.6


def brute_force(rows: list[np.ndarray], names: list[str], query: np.ndarray) -> Match:
    """One float64 distance at a time; the nearest row wins, unknown beyond the threshold."""
    best_name: str | None = None
    best = math.inf
    for row, name in zip(rows, names, strict=True):
        distance = math.sqrt(float(np.sum((row.astype(np.float64) - query) ** 2)))
        if distance < best:
            best, best_name = distance, name
    return Match(best_name if best <= THRESHOLD else None, best)


def same(left: Match, right: Match) -> bool:
    return left.name == right.name and left.distance == pytest.approx(right.distance, abs=1e-5)


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20240611)


def random_people(
    rng: np.random.Generator, people: int, per_person: int
) -> tuple[list[np.ndarray], list[str]]:
    """Embeddings scattered around one centre per person, at dlib-like scales (norm ~1.4)."""
    centres = rng.normal(scale=0.125, size=(people, DIMENSION)).astype(np.float32)
    rows, names = [], []
    for person, centre in enumerate(centres):
        for _ in range(per_person):
            rows.append(centre + rng.normal(scale=0.025, size=DIMENSION).astype(np.float32))
            names.append(f"person-{person}")
    return rows, names


def queries(rng: np.random.Generator, rows: list[np.ndarray], count: int) -> list[np.ndarray]:
    """Half near an enrolled row (should be known), half far from everything (unknown)."""
    near = [
        rows[int(i)] + rng.normal(scale=0.02, size=DIMENSION).astype(np.float32)
        for i in rng.integers(0, len(rows), count // 2)
    ]
    far = [rng.normal(scale=0.125, size=DIMENSION).astype(np.float32) for _ in range(count // 2)]
    return near + far


def test_matches_brute_force(rng: np.random.Generator) -> None:
    rows, names = random_people(rng, people=120, per_person=5)
    gallery = Gallery(DIMENSION, THRESHOLD)
    for row, name in zip(rows, names, strict=True):
        gallery.add(name, row)
    assert len(gallery) == 600 and len(gallery.subjects) == 120
    results = [(gallery.match(q), brute_force(rows, names, q)) for q in queries(rng, rows, 100)]
    assert all(same(got, want) for got, want in results)
    known = sum(got.name is not None for got, _ in results)
    assert 40 <= known <= 60  # both outcomes are exercised


def test_add_many_equals_adding_one_by_one(rng: np.random.Generator) -> None:
    rows, names = random_people(rng, people=50, per_person=3)
    one_by_one, at_once = Gallery(DIMENSION, THRESHOLD), Gallery(DIMENSION, THRESHOLD)
    for row, name in zip(rows, names, strict=True):
        one_by_one.add(name, row)
    at_once.add_many(names, np.stack(rows))
    for query in queries(rng, rows, 40):
        assert one_by_one.match(query) == at_once.match(query)


def test_remove_forgets_every_embedding_of_a_subject(rng: np.random.Generator) -> None:
    rows, names = random_people(rng, people=30, per_person=4)
    gallery = Gallery(DIMENSION, THRESHOLD)
    gallery.add_many(names, np.stack(rows))
    for gone in ("person-0", "person-17", "person-29"):
        assert gallery.remove(gone) == 4
    assert gallery.remove("person-17") == 0
    assert gallery.remove("nobody") == 0
    kept = [(row, name) for row, name in zip(rows, names, strict=True)
            if name not in {"person-0", "person-17", "person-29"}]
    assert len(gallery) == len(kept) == 108
    assert gallery.count("person-17") == 0 and gallery.count("person-5") == 4
    kept_rows, kept_names = [row for row, _ in kept], [name for _, name in kept]
    for query in queries(rng, rows, 100):  # includes queries near the removed people's faces
        got = gallery.match(query)
        assert got.name not in {"person-0", "person-17", "person-29"}
        assert same(got, brute_force(kept_rows, kept_names, query))


def test_removed_subject_can_enrol_again(rng: np.random.Generator) -> None:
    rows, names = random_people(rng, people=3, per_person=2)
    gallery = Gallery(DIMENSION, THRESHOLD)
    gallery.add_many(names, np.stack(rows))
    gallery.remove("person-1")
    gallery.add("person-1", rows[2])
    assert gallery.match(rows[2]) == Match("person-1", 0.0)
    assert gallery.count("person-1") == 1 and len(gallery) == 5


def test_grows_past_its_initial_capacity_and_empties(rng: np.random.Generator) -> None:
    rows, names = random_people(rng, people=100, per_person=3)
    gallery = Gallery(DIMENSION, THRESHOLD)
    for row, name in zip(rows, names, strict=True):
        gallery.add(name, row)
    assert all(gallery.match(row).name == name for row, name in zip(rows, names, strict=True))
    for person in range(100):
        gallery.remove(f"person-{person}")
    assert len(gallery) == 0 and gallery.subjects == set()
    assert gallery.match(rows[0]) == Match(None, math.inf)


def test_threshold_is_inclusive() -> None:
    gallery = Gallery(2, 0.5)
    gallery.add("ann", np.array([0.0, 0.0], np.float32))
    assert gallery.match(np.array([0.5, 0.0], np.float32)) == Match("ann", 0.5)
    assert gallery.match(np.array([0.0, 0.51], np.float32)).name is None


def test_malformed_input_is_refused() -> None:
    gallery = Gallery(DIMENSION, THRESHOLD)
    with pytest.raises(ValueError, match="128"):
        gallery.add("ann", np.zeros(127, np.float32))
    with pytest.raises(ValueError, match="NaN"):
        gallery.add("ann", np.full(DIMENSION, np.nan, np.float32))
    with pytest.raises(ValueError, match="name"):
        gallery.add("", np.zeros(DIMENSION, np.float32))
    with pytest.raises(ValueError, match="names for"):
        gallery.add_many(["ann"], np.zeros((2, DIMENSION), np.float32))
    with pytest.raises(ValueError, match="128"):
        gallery.match(np.zeros(3, np.float32))
    assert len(gallery) == 0


def test_a_match_is_bound_by_its_nearest_row_through_adds_and_removals(
    rng: np.random.Generator,
) -> None:
    rows, names = random_people(rng, people=40, per_person=4)
    bound = [index % 3 == 0 for index in range(len(rows))]
    gallery = Gallery(DIMENSION, THRESHOLD)
    gallery.add_many(names[:100], np.stack(rows[:100]), bound[:100])
    for row, name, flag in zip(rows[100:], names[100:], bound[100:], strict=True):
        gallery.add(name, row, bound=flag)  # grows the matrix past add_many's capacity
    gone = {"person-3", "person-21"}
    for name in gone:
        gallery.remove(name)  # rows move into the holes: their flags must move with them
    kept = [(row, name, flag) for row, name, flag in zip(rows, names, bound, strict=True)
            if name not in gone]
    assert [gallery.match(row) for row, _, _ in kept] == [
        Match(name, 0.0, flag) for _, name, flag in kept]
    stranger = rng.normal(scale=0.125, size=DIMENSION).astype(np.float32)
    assert gallery.match(stranger) == Match(None, gallery.match(stranger).distance, False)


def test_the_nearest_photo_decides_and_a_bound_twin_wins_a_tie() -> None:
    gallery = Gallery(2, 0.5)
    gallery.add("ann", np.array([0.0, 0.0], np.float32), bound=True)
    gallery.add("ann", np.array([0.3, 0.0], np.float32))  # without the token
    assert gallery.match(np.array([0.05, 0.0], np.float32)).bound
    nearer_unbound = gallery.match(np.array([0.25, 0.0], np.float32))
    assert (nearer_unbound.name, nearer_unbound.bound) == ("ann", False)
    assert nearer_unbound.distance == pytest.approx(0.05)
    # The unbound photo enrolled again, with the token: the two are exactly as near.
    gallery.add("ann", np.array([0.3, 0.0], np.float32), bound=True)
    assert gallery.match(np.array([0.25, 0.0], np.float32)).bound
