"""Topic templates are validated when declared, not at the first message."""

from __future__ import annotations

import pytest

from schemas.auth import AUTH_LOGIN, LoginReply, LoginRequest
from schemas.topics import Operation, Topic, TopicError


def test_placeholders_become_single_level_wildcards() -> None:
    topic = Topic("mirrors/{mirror_id}/events/{kind}", None)
    assert topic.params == ("mirror_id", "kind")
    assert topic.filter == "mirrors/+/events/+"
    assert topic.format(mirror_id="m1", kind="face") == "mirrors/m1/events/face"
    assert topic.parse("mirrors/m1/events/face") == {"mirror_id": "m1", "kind": "face"}
    assert topic.parse("mirrors/m1/frame") is None


@pytest.mark.parametrize("template", [
    "", "a//b", "a/b{x}/c", "a/{x}{y}", "a/+/b", "a/#", "$SYS/x", "a/{X}", "a/{x}/{x}",
])
def test_malformed_templates_fail_at_declaration(template: str) -> None:
    with pytest.raises(TopicError):
        Topic(template, None)


@pytest.mark.parametrize("value", ["", "a/b", "+", "#", "a\x00"])
def test_values_that_change_the_shape_are_refused(value: str) -> None:
    with pytest.raises(TopicError):
        Topic("mirrors/{mirror_id}/frame", None).format(mirror_id=value)


def test_missing_or_extra_values_are_refused() -> None:
    topic = Topic("mirrors/{mirror_id}/frame", None)
    with pytest.raises(TopicError):
        topic.format()
    with pytest.raises(TopicError):
        topic.format(mirror_id="m", other="x")


def test_operations_need_both_models() -> None:
    assert AUTH_LOGIN.reply is LoginReply and AUTH_LOGIN.payload is LoginRequest
    with pytest.raises(TopicError):
        Operation("svc/x/y", LoginRequest)
