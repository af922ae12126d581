"""Reading numbers from ``MIRRORHUB_*`` variables, for every service's settings.

Shared plumbing, like :mod:`services.database`: a bad value is a
:class:`~schemas.errors.ConfigError` naming the variable, found at start-up.
"""

from __future__ import annotations

import os
from typing import TypeVar

from schemas.errors import ConfigError

N = TypeVar("N", int, float)


def number(name: str, default: N, low: N, high: N) -> N:
    """``name`` as a number of ``default``'s type between ``low`` and ``high``; ``default``
    when unset or empty."""
    raw = os.environ.get(name)
    if not raw:
        return default
    kind = type(default)
    try:
        value = kind(raw)
    except ValueError as exc:
        what = "an integer" if kind is int else "a number"
        raise ConfigError(f"{name} must be {what}, got {raw!r}") from exc
    if not low <= value <= high:
        raise ConfigError(f"{name} must be between {low:g} and {high:g}, got {value:g}")
    return value
