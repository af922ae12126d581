"""The rules of usernames and mirror ids, as models and as plain functions apply them."""

from __future__ import annotations

import unicodedata

import pytest
from pydantic import BaseModel, ConfigDict, ValidationError

from schemas.auth import LoginRequest
from schemas.errors import ConfigError
from schemas.messaging import MirrorRequest
from schemas.names import (
    MIRROR_ID_MAX,
    USERNAME_MAX,
    MirrorId,
    Username,
    check_mirror_id,
    normal_username,
)

COMPOSED = "Jos\u00e9"  # é as one code point
DECOMPOSED = "Jose\u0301"  # e, then a combining acute accent


class _Named(BaseModel):
    model_config = ConfigDict(strict=True)

    username: Username


class _Mirror(BaseModel):
    model_config = ConfigDict(strict=True)

    mirror_id: MirrorId


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


@pytest.mark.parametrize("given", [
    "hall", "mirror-07", "Hall_2", "a b", "x" * MIRROR_ID_MAX, "\u00e9tage", DECOMPOSED,
])
def test_good_mirror_ids_are_kept_exactly(given: str) -> None:
    assert check_mirror_id(given) == given
    assert _Mirror(mirror_id=given).mirror_id == given  # never normalised
    assert MirrorRequest(mirror_id=given).mirror_id == given


@pytest.mark.parametrize(("given", "reason"), [
    ("", "at least 1 character"),
    (" ", "whitespace"),
    ("   ", "whitespace"),
    (" hall", "whitespace"),
    ("hall\t", "whitespace"),
    ("a/b", "one topic level"),
    ("+", "one topic level"),
    ("hall#", "one topic level"),
    ("ha\x01ll", "control characters"),
    ("ha\x00ll", "control characters"),
    ("x" * (MIRROR_ID_MAX + 1), f"at most {MIRROR_ID_MAX} characters"),
    ("x" * 300, f"at most {MIRROR_ID_MAX} characters"),
])
def test_bad_mirror_ids_are_refused_saying_why(given: str, reason: str) -> None:
    with pytest.raises(ConfigError, match=f"^mirror id .* is not valid: .*{reason}") as caught:
        check_mirror_id(given)
    assert len(str(caught.value)) < 120  # a long id is cut short in the message
    with pytest.raises(ValidationError, match=reason):
        _Mirror(mirror_id=given)
