"""Widget layouts: the document's single-quoted form is parsed, never evaluated, and checked."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from schemas.messaging import GRID_MAX, LayoutError, SetLayoutRequest, check_layout, parse_layout


def test_the_documents_example_parses() -> None:
    text = "{'weather' : [1, 1], 'time' : [1, 2]}"
    assert check_layout(parse_layout(text)) == {"weather": (1, 1), "time": (1, 2)}


@pytest.mark.parametrize("value", [
    '{"weather": [1, 1], "time": [1, 2]}',
    {"weather": [1, 1], "time": [1, 2]},
    "{'weather': (1, 1), \"time\": [1, 2]}",
    "{\n  'weather': [1, 1],\n  'time': [1, 2]\n}",
])
def test_json_objects_and_mixed_quotes(value: object) -> None:
    request = SetLayoutRequest.model_validate({"model_code": "m", "index": value})
    assert request.index == {"weather": (1, 1), "time": (1, 2)}


@pytest.mark.parametrize(("text", "says"), [
    ("__import__('os').system('touch /tmp/pwned')", "unexpected character"),
    ("{'time': [1, 1]} or exit()", "unexpected character"),
    ("{'time': [1, 1], 'weather': [1, 1]}", "both at [1, 1]"),
    ("{'clock': [1, 1]}", "unknown widget 'clock'"),
    ("{'time': [0, 1]}", "integers from 1"),
    ("{'time': [1, -2]}", "integers from 1"),
    (f"{{'time': [1, {GRID_MAX + 1}]}}", "integers from 1"),
    ("{'time': [1]}", "[row, column]"),
    ("{'time': [1, 2, 3]}", "[row, column]"),
    ('{"time": [1.0, 2]}', "[row, column]"),
    ('{"time": [true, 2]}', "[row, column]"),
    ('{"time": ["1", "2"]}', "[row, column]"),
    ("{}", "must be an object"),
    ("[1, 2]", "must be an object"),
    ("{'time': [1, 1]", "not a layout"),
    ("{'time: [1, 1]}", "not closed"),
    ("x" * 5000, "longer than"),
])
def test_bad_layouts_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SetLayoutRequest.model_validate({"model_code": "m", "index": text})
    assert says in str(caught.value)


def test_deep_nesting_is_refused_without_a_crash() -> None:
    with pytest.raises(LayoutError):
        check_layout(parse_layout("[" * 3000 + "]" * 3000))
