"""The in-memory gallery every vision worker matches faces against.

All enrolled embeddings of one engine and model version sit in one float32 matrix, one row per
embedding, with the subject's name in a parallel list; a subject may have several rows and every
one of them counts. :meth:`Gallery.match` finds the nearest row with a single matrix-vector
product, using ``|r - q|^2 = |r|^2 - 2 r.q + |q|^2`` with the rows' squared norms kept beside the
matrix. The winner's distance is then recomputed directly, so the distance reported is exact
even where the expansion loses precision in float32.

The matrix grows by doubling, so adding n rows one at a time costs O(n) copies in all. Each row
also carries an integer code for its subject, so removing a subject finds its rows with one
vectorised comparison and fills their slots with rows from the end: it moves as many rows as it
removes, not the whole matrix. Row order is therefore not enrolment order.

Each row also says whether it is *bound*: enrolled with its user's token. A match is bound when
the nearest row is (docs/http-api.md, "Trust at the mirror"): one subject may hold both kinds,
and only a face nearer to a bound photo than to any other unlocks private content. Among rows
exactly as near (the same photo enrolled twice, without and then with the token) a bound one
wins.

A subject may have its own threshold (:meth:`Gallery.tune`; seed 002's ``PATCH /api/face/:id``),
which replaces the gallery's for matches to it, and *negatives*: faces reported as not the
subject ("not me"). A face is not taken for a subject when it is nearer to one of the
subject's negatives than to the subject's nearest photo: the impostor who was once taken for
them is nearer to their own reported face than to the subject's, the subject nearer to their
own photos. Matching stays with the nearest subject either way: a face refused as its nearest
subject is unknown, not handed to the next one.

A gallery is not thread-safe: mutate and query it from one thread (the service's event loop;
a match over 100,000 rows takes a few milliseconds).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from services.vision.engine import Embedding

_INITIAL_CAPACITY = 64


class Match(NamedTuple):
    """The nearest enrolled face: ``name`` is None when the gallery is empty or the nearest
    embedding is farther than the threshold; ``distance`` is the nearest distance either way
    (infinite for an empty gallery); ``bound`` whether the nearest embedding is bound (never
    for a face not recognised)."""

    name: str | None
    distance: float
    bound: bool = False


class Gallery:
    """Embeddings of one ``dimension`` and their subjects, matched by Euclidean distance.

    ``threshold`` is inclusive: a face exactly at the threshold is recognised.
    """

    def __init__(self, dimension: int, threshold: float) -> None:
        if dimension < 1:
            raise ValueError("the dimension must be positive")
        if not threshold > 0:
            raise ValueError("the threshold must be positive")
        self.dimension = dimension
        self.threshold = threshold
        self._size = 0
        self._rows = np.empty((_INITIAL_CAPACITY, dimension), dtype=np.float32)
        self._squared_norms = np.empty(_INITIAL_CAPACITY, dtype=np.float32)
        self._codes = np.empty(_INITIAL_CAPACITY, dtype=np.int64)
        self._bound = np.empty(_INITIAL_CAPACITY, dtype=np.bool_)
        self._code_of: dict[str, int] = {}
        self._name_of: dict[int, str] = {}
        self._counts: dict[str, int] = {}
        self._next_code = 0
        self._thresholds: dict[str, float] = {}
        self._negatives: dict[str, npt.NDArray[np.float32]] = {}

    def __len__(self) -> int:
        return self._size

    @property
    def subjects(self) -> set[str]:
        return set(self._counts)

    def count(self, name: str) -> int:
        """How many embeddings ``name`` has."""
        return self._counts.get(name, 0)

    def threshold_of(self, name: str) -> float:
        """The threshold of matches to ``name``: its own, else the gallery's."""
        return self._thresholds.get(name, self.threshold)

    def negatives(self, name: str) -> int:
        """How many "not me" faces ``name`` holds."""
        negatives = self._negatives.get(name)
        return 0 if negatives is None else len(negatives)

    def tune(self, name: str, threshold: float | None,
             negatives: npt.ArrayLike | None = None) -> None:
        """Set ``name``'s own threshold (None: the gallery's) and its negatives (None or none:
        no negatives), replacing what it had. It holds until :meth:`remove`."""
        if threshold is not None and not threshold > 0:
            raise ValueError("the threshold must be positive")
        rows = None if negatives is None else np.asarray(negatives, dtype=np.float32)
        if rows is not None and rows.size == 0:
            rows = None
        if rows is not None and (rows.ndim != 2 or rows.shape[1] != self.dimension
                                 or not np.isfinite(rows).all()):
            raise ValueError(f"expected finite vectors of {self.dimension} values")
        self._thresholds.pop(name, None)
        self._negatives.pop(name, None)
        if threshold is not None:
            self._thresholds[name] = threshold
        if rows is not None:
            self._negatives[name] = rows

    def add(self, name: str, embedding: Embedding, bound: bool = False) -> None:
        """Enrol one more embedding for ``name``; raises ``ValueError`` on a malformed vector."""
        row = np.asarray(embedding, dtype=np.float32)
        if row.shape != (self.dimension,):
            raise ValueError(f"expected a vector of {self.dimension} values, got {row.shape}")
        if not name:
            raise ValueError("a subject needs a name")
        if not np.isfinite(row).all():
            raise ValueError("the embedding holds a NaN or an infinity")
        if self._size == len(self._rows):
            self._grow(2 * self._size)
        self._rows[self._size] = row
        self._squared_norms[self._size] = row @ row
        self._codes[self._size] = self._code(name)
        self._bound[self._size] = bound
        self._size += 1

    def add_many(self, names: Sequence[str], embeddings: npt.ArrayLike,
                 bound: Sequence[bool] | None = None) -> None:
        """Enrol ``embeddings[i]`` for ``names[i]`` (bound if ``bound[i]``; default none):
        loading a stored gallery in one call is far quicker than row by row. Nothing is added
        if any row is malformed."""
        rows = np.asarray(embeddings, dtype=np.float32)
        if rows.ndim != 2 or rows.shape[1] != self.dimension:
            raise ValueError(f"expected vectors of {self.dimension} values, got {rows.shape}")
        if len(names) != len(rows) or (bound is not None and len(bound) != len(rows)):
            raise ValueError(f"{len(names)} names for {len(rows)} embeddings")
        if not all(names):
            raise ValueError("every subject needs a name")
        if not np.isfinite(rows).all():
            raise ValueError("an embedding holds a NaN or an infinity")
        end = self._size + len(rows)
        if end > len(self._rows):
            self._grow(max(end, 2 * len(self._rows)))
        self._rows[self._size : end] = rows
        self._squared_norms[self._size : end] = np.einsum("ij,ij->i", rows, rows)
        self._codes[self._size : end] = [self._code(name) for name in names]
        self._bound[self._size : end] = False if bound is None else bound
        self._size = end

    def remove(self, name: str) -> int:
        """Forget every embedding of ``name``, and its threshold and negatives; returns how
        many embeddings there were."""
        self.tune(name, None)
        removed = self._counts.pop(name, 0)
        if not removed:
            return 0
        code = self._code_of.pop(name)
        del self._name_of[code]
        size, new_size = self._size, self._size - removed
        holes = np.flatnonzero(self._codes[:new_size] == code)
        movers = new_size + np.flatnonzero(self._codes[new_size:size] != code)
        self._rows[holes] = self._rows[movers]
        self._squared_norms[holes] = self._squared_norms[movers]
        self._codes[holes] = self._codes[movers]
        self._bound[holes] = self._bound[movers]
        self._size = new_size
        return removed

    def match(self, embedding: Embedding) -> Match:
        """The subject of the nearest enrolled embedding, if within the threshold."""
        query = np.asarray(embedding, dtype=np.float32)
        if query.shape != (self.dimension,):
            raise ValueError(f"expected a vector of {self.dimension} values, got {query.shape}")
        if self._size == 0:
            return Match(None, math.inf)
        rows = self._rows[: self._size]
        # |q|^2 is the same for every row, so it is left out of the comparison.
        squared = self._squared_norms[: self._size] - 2.0 * (rows @ query)
        best = int(np.argmin(squared))
        if not self._bound[best]:
            tied = np.flatnonzero((squared == squared[best]) & self._bound[: self._size])
            best = int(tied[0]) if tied.size else best
        distance = float(np.linalg.norm(rows[best] - query))
        name = self._name_of[int(self._codes[best])]
        if distance > self.threshold_of(name) or self._refused(name, query, distance):
            return Match(None, distance)
        return Match(name, distance, bool(self._bound[best]))

    def nearest(self, embedding: Embedding, limit: int) -> list[Match]:
        """Up to ``limit`` subjects that would each take the face (within their threshold, not
        refused by their negatives), nearest first, with each one's nearest distance."""
        query = np.asarray(embedding, dtype=np.float32)
        if query.shape != (self.dimension,):
            raise ValueError(f"expected a vector of {self.dimension} values, got {query.shape}")
        if self._size == 0:
            return []
        rows = self._rows[: self._size]
        squared = self._squared_norms[: self._size] - 2.0 * (rows @ query) + query @ query
        codes, inverse = np.unique(self._codes[: self._size], return_inverse=True)
        nearest = np.full(len(codes), np.inf, dtype=np.float64)
        np.minimum.at(nearest, inverse, squared)
        found: list[Match] = []
        for index in np.argsort(nearest, kind="stable"):
            name = self._name_of[int(codes[index])]
            mine = np.flatnonzero(inverse == index)  # exact distances, as match() reports
            distance = float(np.min(np.linalg.norm(rows[mine] - query, axis=1)))
            if distance <= self.threshold_of(name) and not self._refused(name, query, distance):
                found.append(Match(name, distance))
            elif math.sqrt(max(float(nearest[index]), 0.0)) > 2 * self._loosest():
                break  # nobody farther can be within a threshold
            if len(found) == limit:
                break
        found.sort(key=lambda match: match.distance)
        return found

    def _loosest(self) -> float:
        return max([self.threshold, *self._thresholds.values()])

    def _refused(self, name: str, query: npt.NDArray[np.float32], distance: float) -> bool:
        """Whether ``query``, ``distance`` from ``name``'s nearest photo, is nearer to one of
        ``name``'s negatives."""
        negatives = self._negatives.get(name)
        if negatives is None:
            return False
        return float(np.min(np.linalg.norm(negatives - query, axis=1))) < distance

    def _code(self, name: str) -> int:
        code = self._code_of.get(name)
        if code is None:
            code = self._code_of[name] = self._next_code
            self._name_of[code] = name
            self._next_code += 1
        self._counts[name] = self._counts.get(name, 0) + 1
        return code

    def _grow(self, capacity: int) -> None:
        size = self._size
        rows = np.empty((capacity, self.dimension), dtype=np.float32)
        rows[:size] = self._rows[:size]
        norms = np.empty(capacity, dtype=np.float32)
        norms[:size] = self._squared_norms[:size]
        codes = np.empty(capacity, dtype=np.int64)
        codes[:size] = self._codes[:size]
        bound = np.empty(capacity, dtype=np.bool_)
        bound[:size] = self._bound[:size]
        self._rows, self._squared_norms, self._codes, self._bound = rows, norms, codes, bound
