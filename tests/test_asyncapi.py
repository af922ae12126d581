"""docs/asyncapi.yaml is what the services' declarations say, and it says it right.

The document is generated (``mirrorhub asyncapi``) from the :class:`~broker.service.Service`
values of ``services/*/handlers.py``, the pydantic models of ``schemas/`` and the prose of
docs/asyncapi-notes.yaml. These tests fail when the file is stale, when an operation declared in
``schemas/`` is served by no service or by two, and when a topic nobody hears or says is
declared. They also walk the document as a reader would: from a declared topic to its channel
(matched by address), to the operations on it, to their message payloads, following local
``$ref`` pointers; the payload schemas found there must have the same properties and required
fields as the pydantic models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from mirrorhub.asyncapi import DOCUMENT, SERVICES, document, render
from mirrorhub.cli import main
from schemas.auth import AuthError
from schemas.catalog import OPERATIONS, TOPICS
from schemas.envelope import REPLY, ErrorBody, ErrorCode, ReplyEnvelope, RequestEnvelope
from schemas.messaging import WIDGETS, MessagingError, SetLayoutRequest
from schemas.topics import Operation, Topic
from schemas.vision import VisionError

DOC_PATH = DOCUMENT
REPLY_ADDRESS = "$message.payload#/reply_to"
JSON = "application/json"
# Every error code a reply may carry: the common ones and each service's own.
KNOWN_CODES = {str(code) for code in (*ErrorCode, *AuthError, *VisionError, *MessagingError)}

Doc = dict[str, Any]
# Topics operations publish on; replies are walked from the operations they answer.
PUBLISHED = tuple(topic for topic in TOPICS if topic is not REPLY)


@pytest.fixture(scope="module")
def doc() -> Doc:
    loaded = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _pointer(doc: Doc, ref: str) -> Any:
    assert ref.startswith("#/"), f"only local references are used, got {ref!r}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"{ref} does not resolve"
        node = node[part]
    return node


def resolve(doc: Doc, node: Any) -> Any:
    """``node`` with every ``$ref`` at its top followed (a ref may point at another ref)."""
    seen: set[str] = set()
    while isinstance(node, dict) and "$ref" in node:
        ref = node["$ref"]
        assert ref not in seen, f"reference cycle through {ref}"
        seen.add(ref)
        node = _pointer(doc, ref)
    return node


def shape(schema: dict[str, Any]) -> tuple[list[str], list[str]]:
    """What the contract fixes about an object schema: its property names and required ones."""
    return sorted(schema.get("properties", {})), sorted(schema.get("required", []))


def model_shape(model: type[BaseModel]) -> tuple[list[str], list[str]]:
    return shape(model.model_json_schema())


def bodies(doc: Doc, schema: Any) -> list[dict[str, Any]]:
    """The model schemas an envelope payload puts in ``body``, through allOf/oneOf/anyOf.

    The generic envelope's own ``body`` (any object) is not a reference and is skipped.
    """
    schema = resolve(doc, schema)
    found: list[dict[str, Any]] = []
    body = schema.get("properties", {}).get("body")
    if isinstance(body, dict) and "$ref" in body:
        found.append(resolve(doc, body))
    for key in ("allOf", "oneOf", "anyOf"):
        for part in schema.get(key, []):
            found.extend(bodies(doc, part))
    return found


def channel_of(doc: Doc, topic: Topic[Any]) -> tuple[str, dict[str, Any]]:
    matches = [(key, channel) for key, channel in doc["channels"].items()
               if channel.get("address") == topic.template]
    assert len(matches) == 1, (
        f"{topic.template} is declared in schemas/catalog.py but has {len(matches)} channels "
        f"in {DOC_PATH.name}; describe it there"
    )
    return matches[0]


def operations_on(doc: Doc, channel_key: str) -> list[dict[str, Any]]:
    """The operations on a channel: an operation's one ``receive`` with its reply, or an
    event's ``send`` and ``receive`` operations (vision says ``recognized``, messaging hears it)."""
    ref = f"#/channels/{channel_key}"
    ops = [op for op in doc.get("operations", {}).values() if op["channel"]["$ref"] == ref]
    assert ops, f"channel {channel_key} is used by no operation"
    return ops


def messages(doc: Doc, refs: list[dict[str, str]], channel_key: str) -> list[dict[str, Any]]:
    """An operation's (or reply's) messages; AsyncAPI 3 wants them taken from the channel."""
    assert refs, f"no messages listed for channel {channel_key}"
    prefix = f"#/channels/{channel_key}/messages/"
    for ref in refs:
        assert ref["$ref"].startswith(prefix), f"{ref['$ref']} is not a message of {channel_key}"
    return [resolve(doc, ref) for ref in refs]


def reply_channel_key(op: dict[str, Any]) -> str:
    return str(op["reply"]["channel"]["$ref"]).removeprefix("#/channels/")


def topic_id(topic: Topic[Any]) -> str:
    return topic.template


# -- channels ------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", TOPICS, ids=topic_id)
def test_every_declared_topic_has_its_channel(doc: Doc, topic: Topic[Any]) -> None:
    _, channel = channel_of(doc, topic)
    assert tuple(channel.get("parameters", {})) == topic.params


def test_every_channel_is_a_declared_topic(doc: Doc) -> None:
    declared = {topic.template for topic in TOPICS}
    addressed = {key: channel["address"] for key, channel in doc["channels"].items()
                 if channel.get("address") is not None}
    undeclared = {key: address for key, address in addressed.items() if address not in declared}
    assert not undeclared, f"channels without a topic in schemas/: {undeclared}"
    assert len(addressed) == len(doc["channels"]), "every channel has an address"
    # Replies go to the reply topic, the one a request names in reply_to.
    assert doc["channels"]["reply"]["address"] == REPLY.template


# -- payloads ------------------------------------------------------------------------------------


@pytest.mark.parametrize("topic", PUBLISHED, ids=topic_id)
def test_payload_schemas_match_the_models(doc: Doc, topic: Topic[Any]) -> None:
    key, _ = channel_of(doc, topic)
    ops = operations_on(doc, key)
    if isinstance(topic, Operation):
        assert len(ops) == 1, f"{topic.template} is answered by {len(ops)} operations"
    for op in ops:
        check_operation(doc, topic, key, op)


def check_operation(doc: Doc, topic: Topic[Any], key: str, op: dict[str, Any]) -> None:
    found = messages(doc, op["messages"], key)
    if isinstance(topic, Operation):
        assert topic.payload is not None and topic.reply is not None
        assert op["action"] == "receive"
        for message in found:
            assert [shape(s) for s in bodies(doc, message["payload"])] == [
                model_shape(topic.payload)
            ], f"request body of {topic.template}"
        reply = op["reply"]
        assert resolve(doc, reply["address"])["location"] == REPLY_ADDRESS
        for message in messages(doc, reply["messages"], reply_channel_key(op)):
            assert [shape(s) for s in bodies(doc, message["payload"])] == [
                model_shape(topic.reply)
            ], f"reply body of {topic.template}"
    else:
        assert "reply" not in op, f"{topic.template} is an event, not an operation"
        for message in found:
            content_type = message.get("contentType", doc.get("defaultContentType"))
            if topic.payload is None:
                assert content_type != JSON, f"{topic.template} carries raw bytes"
            else:
                assert content_type == JSON
                assert shape(resolve(doc, message["payload"])) == model_shape(topic.payload)


def test_envelope_schemas_match_the_models(doc: Doc) -> None:
    schemas = doc["components"]["schemas"]
    assert shape(schemas["RequestEnvelope"]) == model_shape(RequestEnvelope)
    assert shape(schemas["ErrorBody"]) == model_shape(ErrorBody)
    success, failure = schemas["ReplySuccess"], schemas["ReplyFailure"]
    properties, required = model_shape(ReplyEnvelope)
    # The model allows both parts; on the wire a reply has exactly one of them.
    assert sorted(set(success["properties"]) | set(failure["properties"])) == properties
    assert set(required) <= set(success["required"]) & set(failure["required"])
    assert "error" not in success["properties"] and "body" not in failure["properties"]


@pytest.mark.parametrize("topic", PUBLISHED, ids=topic_id)
def test_examples_are_valid_messages(doc: Doc, topic: Topic[Any]) -> None:
    key, _ = channel_of(doc, topic)
    op = operations_on(doc, key)[0]
    for message in messages(doc, op["messages"], key):
        for example in message.get("examples", []):
            payload = example["payload"]
            if isinstance(topic, Operation):
                assert topic.payload is not None
                envelope = RequestEnvelope.model_validate(payload)
                topic.payload.model_validate(envelope.body)
            elif topic.payload is not None:
                topic.payload.model_validate(payload)
    if not isinstance(topic, Operation):
        return
    assert topic.reply is not None
    for message in messages(doc, op["reply"]["messages"], reply_channel_key(op)):
        for example in message.get("examples", []):
            reply = ReplyEnvelope.model_validate(example["payload"])
            if reply.ok:
                assert reply.body is not None and reply.error is None
                topic.reply.model_validate(reply.body)
            else:
                assert reply.error is not None and reply.body is None
                assert reply.error.code in KNOWN_CODES


# -- errors --------------------------------------------------------------------------------------


def test_every_error_code_is_documented(doc: Doc) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["ErrorCode"]["enum"] == [str(code) for code in ErrorCode]
    assert schemas["AuthErrorCode"]["enum"] == [str(code) for code in AuthError]
    assert schemas["MessagingErrorCode"]["enum"] == [str(code) for code in MessagingError]
    description = doc["info"]["description"]
    for code in ErrorCode:
        assert f"`{code}`" in description, f"common error code {code} is not explained"


def test_operations_list_known_error_codes(doc: Doc) -> None:
    listed: set[str] = set()
    for message in doc["components"]["messages"].values():
        codes = set(message.get("x-error-codes", []))
        assert codes <= KNOWN_CODES, f"{message['name']} lists unknown codes {codes - KNOWN_CODES}"
        listed |= codes
    # Every service-specific code is raised by some operation, and says which.
    assert {str(code) for code in AuthError} <= listed
    assert {str(code) for code in MessagingError} <= listed


def test_layout_names_the_known_widgets(doc: Doc) -> None:
    layout = doc["components"]["schemas"][SetLayoutRequest.__name__]["properties"]["index"]
    assert layout["propertyNames"]["enum"] == sorted(WIDGETS)


# -- the document itself -------------------------------------------------------------------------


def test_every_reference_resolves(doc: Doc) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                resolve(doc, node)
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    assert doc["asyncapi"].startswith("3.")
    walk(doc)


# -- the declarations ----------------------------------------------------------------------------


def test_the_document_is_what_the_declarations_say() -> None:
    assert DOC_PATH.read_text(encoding="utf-8") == render(document()), (
        "docs/asyncapi.yaml is stale: run `.venv/bin/mirrorhub asyncapi`"
    )


def test_every_declared_operation_is_served_exactly_once() -> None:
    served = [handler.operation.template for service in SERVICES
              for handler in service.handlers]
    for operation in OPERATIONS:
        assert served.count(operation.template) == 1, (
            f"{operation.template} is served {served.count(operation.template)} times"
        )
    assert sorted(served) == sorted(op.template for op in OPERATIONS), "served but undeclared"


def test_every_event_topic_is_said_or_heard_by_a_service() -> None:
    used = {topic.template for service in SERVICES
            for topic in (*service.topics_heard(), *service.topics_said())}
    unused = [t.template for t in TOPICS if t.template not in used and t is not REPLY]
    assert not unused, f"declared in schemas/ but no service hears or says them: {unused}"


def test_the_command_writes_and_checks_the_document(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.yaml"
    assert main(["asyncapi", "--output", str(target), "--check"]) == 1
    assert main(["asyncapi", "--output", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == render(document())
    assert main(["asyncapi", "--output", str(target), "--check"]) == 0
