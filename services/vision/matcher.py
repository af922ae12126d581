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

    def __len__(self) -> int:
        return self._size

    @property
    def subjects(self) -> set[str]:
        return set(self._counts)

    def count(self, name: str) -> int:
        """How many embeddings ``name`` has."""
        return self._counts.get(name, 0)

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
        """Forget every embedding of ``name``; returns how many there were."""
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
        if distance > self.threshold:
            return Match(None, distance)
        return Match(self._name_of[int(self._codes[best])], distance, bool(self._bound[best]))

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
