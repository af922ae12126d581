"""The rules of usernames, as models and as plain functions apply them."""

from __future__ import annotations

import unicodedata

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.auth import LoginRequest
from schemas.names import USERNAME_MAX, Username, normal_username

COMPOSED = "Jos\u00e9"  # é as one code point
DECOMPOSED = "Jose\u0301"  # e, then a combining acute accent


class _Named(BaseModel):
    model_config = ConfigDict(strict=True)

    username: Username


@pytest.mark.parametrize(("given", "stored"), [
    ("ann", "ann"),
    ("  ann\t", "ann"),
    (DECOMPOSED, COMPOSED),
    (f" {DECOMPOSED} ", COMPOSED),
    ("Ann", "Ann"),  # case is kept
    ("ann smith", "ann smith"),
    ("x" * USERNAME_MAX, "x" * USERNAME_MAX),
])
def test_usernames_take_one_form(given: str, stored: str) -> None:
    assert normal_username(given) == stored
    assert _Named(username=given).username == stored
    assert LoginRequest(username=given, password="pw").username == stored


@pytest.mark.parametrize(("given", "reason"), [
    ("", "at least 1 character"),
    ("   ", "at least 1 character"),
    ("x" * (USERNAME_MAX + 1), f"at most {USERNAME_MAX} characters"),
    ("an\x00n", "control characters"),
    ("ann\x7f", "control characters"),
    ("a\nb", "control characters"),
])
def test_usernames_that_break_the_rules_are_refused(given: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        normal_username(given)
    with pytest.raises(ValidationError, match=reason):
        _Named(username=given)


def test_the_length_counts_the_stored_form() -> None:
    # U+0958 has no composed form in NFC: it becomes two code points, so 64 of them are 128.
    widening = "\u0958"
    assert len(unicodedata.normalize("NFC", widening)) == 2
    assert normal_username(widening * (USERNAME_MAX // 2)) == unicodedata.normalize(
        "NFC", widening * (USERNAME_MAX // 2)
    )
    with pytest.raises(ValueError, match=f"at most {USERNAME_MAX}"):
        normal_username(widening * USERNAME_MAX)


def test_a_username_must_be_a_string_in_strict_models() -> None:
    with pytest.raises(ValidationError, match="valid string"):
        _Named.model_validate({"username": 42})
