"""The names that identify people, with their rules declared once.

* :data:`Username`: what the auth service stores and every other part compares against. It is
  put in Unicode NFC first (so "é" typed as one code point or as "e" plus an accent is one
  name), then stripped of surrounding whitespace; 1 to 64 characters; no control characters.
  Case is kept: ``Ann`` and ``ann`` are two users.

Models use the ``Annotated`` types; code that holds a plain string uses
:func:`normal_username`, which applies the very same rules.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, StringConstraints, TypeAdapter

USERNAME_MAX = 64


def printable(value: str) -> str:
    """``value`` unless it holds an ASCII control character (``ValueError``)."""
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


def _nfc(value: object) -> object:
    # Before the length check, which must count what is stored; a non-string is left for the
    # (strict) string validation to refuse.
    return unicodedata.normalize("NFC", value) if isinstance(value, str) else value


Username = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=USERNAME_MAX),
    AfterValidator(printable),
    BeforeValidator(_nfc),
]


_USERNAME: TypeAdapter[str] = TypeAdapter(Username)


def normal_username(value: str) -> str:
    """``value`` in the form auth stores it; a ``ValueError`` (pydantic's ``ValidationError``)
    when it breaks the rules."""
    return _USERNAME.validate_python(value)
