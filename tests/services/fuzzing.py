"""Hypothesis strategies for messages an attacker may publish on a ``svc/*`` topic.

A :class:`Case` is one message: a payload made from a fresh request id and the fuzzer's reply
topic, and what the documented contract (docs/asyncapi.yaml, "Request/reply") promises for it:
a reply on ``reply_to`` when the payload names a usable ``id`` and ``reply_to``, otherwise an
``events/{service}/rejected`` event. Bodies come from the operation's own pydantic model: values
of the declared types (so requests reach the handlers), values of other types, fields left out,
fields added.
"""

from __future__ import annotations

import base64
import json
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from broker.runner import DEFAULT_MAX_PAYLOAD
from schemas.envelope import REPLY_TO_PATTERN, REQUEST_ID_MAX, RequestEnvelope
from schemas.topics import safe_topic_text

Json = Any
REPLY_TO = re.compile(REPLY_TO_PATTERN)
_MAX_TEXT = 80  # plausible strings stay short, so that examples stay cheap


class _Fresh:
    """Stands for the fresh request id (or the fuzzer's reply topic) a case is sent with."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


OWN_ID, OWN_REPLY = _Fresh("OWN_ID"), _Fresh("OWN_REPLY")


def usable(request_id: Json, reply_to: Json) -> bool:
    """Whether the contract promises a reply: ``id`` a non-empty string, ``reply_to`` one level
    below ``reply/`` that a topic may hold."""
    return (isinstance(request_id, str) and request_id != ""
            and isinstance(reply_to, str) and REPLY_TO.fullmatch(reply_to) is not None
            and safe_topic_text(reply_to))


def expired(data: bytes) -> bool:
    """A valid envelope whose deadline (a JSON number) has passed, or is about to: dropped
    unanswered by design, so never sent."""
    try:
        envelope = RequestEnvelope.model_validate_json(data)
        deadline = json.loads(data).get("deadline")
    except (ValidationError, ValueError, RecursionError):
        return False
    return (envelope.deadline is not None and type(deadline) in (int, float)
            and envelope.deadline <= time.time() + 30)


@dataclass(frozen=True)
class Case:
    """One fuzzed message (see the module docstring). ``build`` makes its payload from the id
    and reply topic; ``shape`` says which ``id`` and ``reply_to`` the payload names."""

    label: str
    build: Callable[[str, str], bytes] = field(repr=False)
    shape: Callable[[str, str], tuple[Json, Json]] = field(repr=False)

    def __repr__(self) -> str:
        return f"Case({self.label[:400]})"

    def payload(self, request_id: str, reply_to: str) -> bytes:
        return self.build(request_id, reply_to)

    def answer(self, request_id: str, reply_to: str) -> tuple[str, str] | None:
        """Where a reply is promised to go, with the id it must echo (cut to the limit), or
        None when a rejection is promised instead."""
        named = self.shape(request_id, reply_to)
        if not usable(*named):
            return None
        return str(named[0])[:REQUEST_ID_MAX], str(named[1])


def _fill(value: Json, request_id: str, reply_to: str) -> Json:
    if value is OWN_ID:
        return request_id
    return reply_to if value is OWN_REPLY else value


def envelope_case(fields: dict[str, Json], tail: bytes = b"") -> Case:
    """A JSON object with the envelope's keys (or some of them, or others), ``tail`` spliced in
    before its closing brace (raw JSON the encoder would not write)."""

    def build(request_id: str, reply_to: str) -> bytes:
        filled = {key: _fill(value, request_id, reply_to) for key, value in fields.items()}
        data = json.dumps(filled).encode()
        return data[:-1] + (b", " if fields else b"") + tail + b"}" if tail else data

    def shape(request_id: str, reply_to: str) -> tuple[Json, Json]:
        # What a reader of the bytes finds (the last of keys given twice); nothing in bytes
        # that are not UTF-8 JSON.
        try:
            data = json.loads(build(request_id, reply_to))
        except ValueError:
            return None, None
        return (data.get("id"), data.get("reply_to")) if isinstance(data, dict) else (None, None)

    return Case(f"envelope {fields!r} {tail!r}", build, shape)


def raw_case(data: bytes) -> Case:
    """Bytes that name nobody to answer to."""
    return Case(f"raw {data[:60]!r} ({len(data)} bytes)", lambda *_: data, lambda *_: (None, None))


# -- JSON values ---------------------------------------------------------------------------------

_scalars = (st.none() | st.booleans() | st.integers() | st.integers(-(2**70), 2**70)
            | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
json_values = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                max_size=4),
    max_leaves=12,
)


def nested(depth: int, leaf: str = "0") -> str:
    """JSON ``depth`` levels deep, alternating arrays and objects."""
    opening = "".join('[' if level % 2 else '{"a":' for level in range(depth))
    closing = "".join(']' if level % 2 else '}' for level in reversed(range(depth)))
    return opening + leaf + closing


def _image(extension: str, size: int) -> bytes:
    ok, data = cv2.imencode(extension, np.full((size, size, 3), 127, np.uint8))
    assert ok
    return bytes(data)


# Words a real request holds (a username, an address, a widget, a file type), so that some
# requests get past validation to the handlers.
_WORDS = ("ann", "ann@example.com", "m1", "correct horse battery staple", "calendar", "png",
          "photo.png", "0")
# Real (tiny, faceless) pictures and broken ones, for image fields: decoding is reached.
_PICTURES = (_image(".png", 16), _image(".jpg", 32), _image(".png", 1), b"",
             _image(".png", 16)[:40], b"\xff\xd8\xff" + b"\x00" * 64, b"GIF89a")


# -- values of a model's declared types ----------------------------------------------------------


def plausible(schema: dict[str, Any] | bool, defs: dict[str, Any]) -> st.SearchStrategy[Json]:
    """Values of the type a JSON schema (as pydantic writes it) declares, near its limits;
    not always valid (lengths may overshoot, patterns of one field are kept). A schema that is
    ``true`` (``dict[str, Any]``'s ``additionalProperties``) takes any JSON value."""
    if not isinstance(schema, dict):
        return json_values
    if "$ref" in schema:
        return plausible(defs[schema["$ref"].rsplit("/", 1)[1]], defs)
    if "anyOf" in schema:
        return st.one_of([plausible(part, defs) for part in schema["anyOf"]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "string":
        return _strings(schema)
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        near = [v for v in (low, high) if v is not None]
        return st.integers(low, high) | st.sampled_from([*near, -1, 0, 2**63]) if near \
            else st.integers(-(2**40), 2**40)
    if kind == "number":
        return st.floats(schema.get("minimum"), schema.get("maximum"), allow_nan=False,
                         allow_infinity=False)
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    if kind == "array":
        items = plausible(schema.get("items", {}), defs)
        return st.lists(items, min_size=schema.get("minItems", 0),
                        max_size=min(schema.get("maxItems", 4), 4) + 1)
    if kind == "object":
        return body_of(schema, defs) if "properties" in schema else st.dictionaries(
            _keys(schema, defs), plausible(schema.get("additionalProperties", {}), defs),
            max_size=4)
    return json_values


def _keys(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[str]:
    names = schema.get("propertyNames")
    return plausible(names, defs) if names else st.text(max_size=12)


def _strings(schema: dict[str, Any]) -> st.SearchStrategy[str]:
    if schema.get("format") == "binary" or schema.get("contentEncoding") == "base64":
        raw = st.sampled_from(_PICTURES) | st.binary(max_size=64)  # pictures, mostly
        return raw.map(lambda data: base64.b64encode(data).decode()) | st.text(max_size=12)
    if "pattern" in schema:
        return st.from_regex(schema["pattern"], fullmatch=True) | st.text(max_size=8)
    low = schema.get("minLength", 0)
    high = schema.get("maxLength")
    # Around the limits: a few characters, and one more than allowed.
    sizes = [low, max(low - 1, 0), *((high, high + 1) if high is not None else ())]
    return st.one_of(
        st.sampled_from(_WORDS), st.text(min_size=low, max_size=min(high or _MAX_TEXT, _MAX_TEXT)),
        st.sampled_from(sizes).flatmap(lambda n: st.text("aZ9_-.@ é", min_size=n, max_size=n)),
    )


def body_of(schema: dict[str, Any], defs: dict[str, Any]) -> st.SearchStrategy[dict[str, Json]]:
    """Objects of a model's shape: required fields present, optional ones sometimes."""
    required = set(schema.get("required", ()))
    properties = schema.get("properties", {})
    return st.fixed_dictionaries(
        {name: plausible(sub, defs) for name, sub in properties.items() if name in required},
        optional={name: plausible(sub, defs) for name, sub in properties.items()
                  if name not in required},
    )


def bodies(model: type[BaseModel]) -> st.SearchStrategy[Json]:
    """Request bodies for ``model``: of its shape, with one field of another type or missing,
    with only unknown fields, or not an object at all."""
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    shaped = body_of(schema, defs)
    names = sorted(schema.get("properties", {})) or ["x"]

    def mutate(draw: st.DrawFn) -> dict[str, Json]:
        body = dict(draw(shaped))
        name = draw(st.sampled_from(names))
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(json_values)
        return body

    return st.one_of(
        shaped, st.composite(mutate)(),
        st.dictionaries(st.sampled_from(names) | st.text(max_size=8), json_values, max_size=6),
        json_values.filter(lambda value: not isinstance(value, dict)),
    )


# -- envelopes and raw payloads ------------------------------------------------------------------

_ids = st.one_of(
    st.just(OWN_ID), st.just(OWN_ID), st.just(""), st.integers(), st.none(),
    st.lists(st.text(max_size=3), max_size=2), st.just({"id": "x"}),
)
_reply_topics = st.one_of(
    st.just(OWN_REPLY), st.just(OWN_REPLY),
    # Elsewhere: one level below reply/ with any text in it, and never-reply topics.
    st.text(min_size=1, max_size=20).map(lambda level: f"reply/{level}"),
    st.sampled_from(["", "reply", "reply/", "reply/a/b", "reply/+", "reply/#", "#", "+",
                     "mirrors/m1/display", "svc/auth/login", "events/vision/recognized",
                     "$SYS/broker", "/reply/x", "reply/x\x00y"]),
    st.text(max_size=20), st.integers(), st.none(), st.lists(st.just("reply/x"), max_size=2),
)
_deadlines = st.one_of(
    st.just(math.inf).map(lambda _: time.time() + 600), st.none(), st.text(max_size=6),
    st.lists(st.integers(), max_size=2), st.just({}), st.booleans(),
)


# Raw JSON spliced into an envelope: what json.dumps would not write, keys given twice.
_TAILS = (b'"deadline": NaN', b'"deadline": 1e999', b'"body": {}', b'"body": []', b'"id": 1',
          b'"x": "\xff\xfe"', b'"reply_to": "reply/\\ud800"', b'"reply_to": "reply/\\u0001"',
          b'"reply_to": "reply/\xc3"', b'"id": "\\udfff"')


def envelopes(model: type[BaseModel]) -> st.SearchStrategy[Case]:
    """Envelopes around :func:`bodies`: every key of its own kind or of another, missing or
    added; some with JSON the encoder would not write (NaN, repeated keys, bad UTF-8)."""

    def build(draw: st.DrawFn) -> Case:
        fields: dict[str, Json] = {"id": draw(_ids), "reply_to": draw(_reply_topics),
                                   "body": draw(bodies(model))}
        if draw(st.booleans()):
            fields["deadline"] = draw(_deadlines)
        for name in draw(st.sets(st.sampled_from(["id", "reply_to", "body"]), max_size=2)):
            fields.pop(name)
        if draw(st.integers(0, 5)) == 0:
            fields[draw(st.text(min_size=1, max_size=8))] = draw(json_values)
        tail = draw(st.sampled_from([b""] * 6 + list(_TAILS)))
        return envelope_case(fields, tail)

    return st.composite(build)()


def _head(request_id: str, reply_to: str) -> bytes:
    return b'{"id": %b, "reply_to": %b, ' % (json.dumps(request_id).encode(),
                                              json.dumps(reply_to).encode())


def _named(label: str, build: Callable[[bytes], bytes]) -> Case:
    """A payload that names the fuzzer's id and reply topic at its start, then ``build``'s
    bytes: the service reads those two off the head of what it cannot parse whole."""
    return Case(label, lambda i, r: build(_head(i, r)), lambda i, r: (i, r))


def _huge(size: int, named: bool) -> Case:
    filler = b'"body": {"text": "' + b"x" * size + b'"}}'
    if named:
        return _named(f"huge {size} named", lambda head: head + filler)
    return raw_case(b"[" + b"0," * (size // 2) + b"0]")


def _deep(depth: int, inside: bool) -> Case:
    if inside:
        return _named(f"deep body {depth}",
                      lambda head: head + b'"body": {"a": %b}}' % nested(depth).encode())
    return raw_case(nested(depth).encode())


payloads = st.one_of(
    st.binary(max_size=64).map(raw_case),
    st.binary(min_size=1, max_size=32).map(lambda data: raw_case(b"\xff" + data)),
    st.just(raw_case(b"")),
    json_values.filter(lambda value: not isinstance(value, dict)).map(
        lambda value: raw_case(json.dumps(value).encode())),
    st.sampled_from([b"{", b"null", b'{"id": "x", "reply_to": "reply/', b"\x00" * 16,
                     b'\xef\xbb\xbf{"id": "a"}', b'{"id": "\xed\xa0\x80"}']).map(raw_case),
    st.builds(_huge, st.sampled_from([DEFAULT_MAX_PAYLOAD + 1, 2 * DEFAULT_MAX_PAYLOAD]),
              st.booleans()),
    st.builds(_deep, st.sampled_from([64, 300, 1100, 5000]), st.booleans()),
)


def cases(model: type[BaseModel]) -> st.SearchStrategy[Case]:
    """Every kind of message for an operation whose request body is ``model``."""
    return st.one_of(envelopes(model), envelopes(model), payloads)
