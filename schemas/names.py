"""The names that identify people and mirrors, each with its rules declared once.

* :data:`Username`: what the auth service stores and every other part compares against. It is
  put in Unicode NFC first (so "é" typed as one code point or as "e" plus an accent is one
  name), then stripped of surrounding whitespace; 1 to 64 characters; no control characters.
  Case is kept: ``Ann`` and ``ann`` are two users.
* :data:`MirrorId`: a mirror's id fills one MQTT topic level (``mirrors/{mirror_id}/...``) and
  is the username of the mirror's own broker account. 1 to 64 characters; no ``/``, ``+``,
  ``#`` or control characters; no whitespace at either end (it would be invisible in a
  terminal and in ``mosquitto_sub -v``, yet another id). Unlike a username it is never
  normalised: real mirrors publish to topics spelled exactly as their id.

Models use the ``Annotated`` types; code that holds a plain string uses
:func:`normal_username` and :func:`check_mirror_id`, which apply the very same rules.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import (
    AfterValidator,
    BeforeValidator,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from schemas.errors import ConfigError

USERNAME_MAX = 64
MIRROR_ID_MAX = 64
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def printable(value: str) -> str:
    """``value`` unless it holds an ASCII control character (``ValueError``)."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def nfc(value: object) -> object:
    """``value`` in Unicode NFC, for a ``BeforeValidator``."""
    # Before the length check, which must count what is stored; a non-string is left for the
    # (strict) string validation to refuse.
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=USERNAME_MAX),
    AfterValidator(printable),
    BeforeValidator(nfc),
]


def _one_level(value: str) -> str:
    if value != value.strip():
        raise ValueError("must not start or end with whitespace")
    if any(c in value for c in "/+#"):
        raise ValueError("must be one topic level, without '/', '+' or '#'")
    return printable(value)


MirrorId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MIRROR_ID_MAX),
    AfterValidator(_one_level),
]

_USERNAME: TypeAdapter[str] = TypeAdapter(Username)
_MIRROR_ID: TypeAdapter[str] = TypeAdapter(MirrorId)


def normal_username(value: str) -> str:
    """``value`` in the form auth stores it; a ``ValueError`` (pydantic's ``ValidationError``)
    when it breaks the rules."""
    return _USERNAME.validate_python(value)


def check_mirror_id(value: str) -> str:
    """``value`` if it is a valid mirror id, else a :class:`ConfigError` saying why."""
    try:
        return _MIRROR_ID.validate_python(value)
    except ValidationError as exc:
        shown = repr(value) if len(value) <= 24 else f"{value[:20]!r}... ({len(value)} characters)"
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(f"mirror id {shown} is not valid: {reason}") from exc
