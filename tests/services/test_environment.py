"""Numbers from MIRRORHUB_* variables: defaults, types and bounds, with the variable named."""

from __future__ import annotations

import pytest

from schemas.errors import ConfigError
from services.environment import number


def test_unset_or_empty_gives_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRRORHUB_X", raising=False)
    assert number("MIRRORHUB_X", 5, 1, 10) == 5
    monkeypatch.setenv("MIRRORHUB_X", "")
    assert number("MIRRORHUB_X", 2.5, 0.0, 10.0) == 2.5


def test_the_defaults_type_decides(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MIRRORHUB_X", "7")
    assert number("MIRRORHUB_X", 5, 1, 10) == 7
    monkeypatch.setenv("MIRRORHUB_X", "0.25")
    assert number("MIRRORHUB_X", 1.0, 0.0, 1.0) == 0.25
    with pytest.raises(ConfigError, match=r"MIRRORHUB_X must be an integer, got '0\.25'"):
        number("MIRRORHUB_X", 5, 1, 10)


@pytest.mark.parametrize("raw", ["0", "11", "-3"])
def test_out_of_bounds_is_refused(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("MIRRORHUB_X", raw)
    with pytest.raises(ConfigError, match="MIRRORHUB_X must be between 1 and 10"):
        number("MIRRORHUB_X", 5, 1, 10)
