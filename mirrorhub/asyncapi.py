"""docs/asyncapi.yaml, written from the services' declarations: ``mirrorhub asyncapi``.

The structure comes from code: every channel, operation and message from the
:class:`~broker.service.Service` values in ``services/*/handlers.py`` (what each service
answers, hears and says), every payload schema from the pydantic models in ``schemas/``. What
code cannot say (titles, descriptions, examples, the error codes of each operation, the
servers) comes from docs/asyncapi-notes.yaml, keyed by topic template. A topic that a service
declares but the notes do not describe still gets its channel, named after the template.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from broker.service import Service
from schemas.auth import AuthError
from schemas.envelope import REPLY, ErrorBody, ErrorCode, ReplyEnvelope, RequestEnvelope
from schemas.messaging import MessagingError
from schemas.service import REJECTED, SERVICE_STATUS
from schemas.topics import Operation, Topic
from schemas.vision import VisionError
from services.auth.handlers import AUTH
from services.messaging.handlers import MESSAGING
from services.vision.handlers import VISION

SERVICES: tuple[Service, ...] = (AUTH, VISION, MESSAGING)
ROOT = Path(__file__).resolve().parents[1]
DOCUMENT = ROOT / "docs" / "asyncapi.yaml"
NOTES = ROOT / "docs" / "asyncapi-notes.yaml"
ERROR_ENUMS: dict[str, type[StrEnum]] = {
    "ErrorCode": ErrorCode, "AuthErrorCode": AuthError,
    "VisionErrorCode": VisionError, "MessagingErrorCode": MessagingError,
}
_REF = "#/components/schemas/{model}"
_BINDING = "0.2.0"
_HEADER = """\
# The MQTT side of mirrorhub, as the backend services see it. GENERATED: do not edit.
#
# Written by `mirrorhub asyncapi` from the services' declarations (services/*/handlers.py), the
# pydantic models in schemas/, and the prose in docs/asyncapi-notes.yaml (edit that one).
# tests/test_asyncapi.py fails when this file is stale.
"""


def channel_key(template: str) -> str:
    """``svc/auth/reset_password/confirm`` -> ``svcAuthResetPasswordConfirm``, for topics
    the notes name no key for."""
    words = [w for w in re.split(r"[/_{}]+", template) if w]
    return words[0] + "".join(w[:1].upper() + w[1:] for w in words[1:])


class _Builder:
    def __init__(self, notes: dict[str, Any]) -> None:
        self.notes = notes
        self.topic_notes: dict[str, dict[str, Any]] = notes.get("topics", {})
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.messages: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}
        self.reply_messages: dict[str, Any] = {}

    # -- schemas ---------------------------------------------------------------------------------

    def schema(self, model: type[BaseModel]) -> dict[str, str]:
        """A reference to ``model``'s schema, adding it (and what it refers to) on first use."""
        name = model.__name__
        if name not in self.schemas:
            schema = model.model_json_schema(ref_template=_REF)
            for inner, definition in schema.pop("$defs", {}).items():
                self.schemas.setdefault(inner, definition)
            self.schemas[name] = schema
        return {"$ref": _REF.format(model=name)}

    def envelope_schemas(self) -> None:
        self.schema(RequestEnvelope)
        self.schema(ErrorBody)
        reply = ReplyEnvelope.model_json_schema(ref_template=_REF)
        reply.pop("$defs", None)
        properties = reply["properties"]
        self.schemas["ReplySuccess"] = {
            "type": "object", "additionalProperties": False,
            "description": "A reply carrying the operation's result; there is no `error` key.",
            "properties": {"id": properties["id"], "ok": {"const": True},
                           "body": {"type": "object"}},
            "required": ["id", "ok", "body"],
        }
        self.schemas["ReplyFailure"] = {
            "type": "object", "additionalProperties": False,
            "description": "A reply carrying a typed error; there is no `body` key.",
            "properties": {"id": properties["id"], "ok": {"const": False},
                           "error": {"$ref": _REF.format(model="ErrorBody")}},
            "required": ["id", "ok", "error"],
        }
        for name, enum in ERROR_ENUMS.items():
            self.schemas[name] = {"type": "string", "description": (enum.__doc__ or "").strip(),
                                  "enum": [str(code) for code in enum]}

    # -- channels and messages -------------------------------------------------------------------

    def channel(self, topic: Topic[Any]) -> str:
        """The channel of ``topic``, made on first use; returns its key."""
        note = self.topic_notes.get(topic.template, {})
        key = str(note.get("key") or channel_key(topic.template))
        if key in self.channels:
            return key
        channel: dict[str, Any] = {"address": topic.template,
                                   "title": note.get("title") or topic.template}
        description = note.get("description") or topic.description
        if description:
            channel["description"] = description
        if topic.params:
            channel["parameters"] = {name: {"$ref": f"#/components/parameters/{name}"}
                                     for name in topic.params}
        if isinstance(topic, Operation):
            assert topic.payload is not None and topic.reply is not None
            request = self.message(f"{key}Request", note.get("request", {}), {
                "allOf": [self.schema_ref("RequestEnvelope"),
                          {"properties": {"body": self.schema(topic.payload)}}]})
            reply = self.message(f"{key}Reply", note.get("reply", {}), {
                "oneOf": [{"allOf": [self.schema_ref("ReplySuccess"),
                                     {"properties": {"body": self.schema(topic.reply)}}]},
                          self.schema_ref("ReplyFailure")]})
            channel["messages"] = {"request": request}
            self.reply_messages[key] = reply
        else:
            message_note = note.get("message", {})
            payload = (self.schema(topic.payload) if topic.payload is not None
                       else {"type": "string", "format": "binary"})
            if topic.payload is None:
                message_note = {"contentType": "application/octet-stream", **message_note}
            channel["messages"] = {str(note.get("message_key", "message")):
                                   self.message(key, message_note, payload)}
        self.channels[key] = channel
        return key

    @staticmethod
    def schema_ref(name: str) -> dict[str, str]:
        return {"$ref": _REF.format(model=name)}

    def message(self, key: str, note: dict[str, Any], payload: dict[str, Any]) -> dict[str, str]:
        message = {"name": note.get("name", key), **note, "payload": payload}
        self.messages[key] = message
        return {"$ref": f"#/components/messages/{key}"}

    # -- operations ------------------------------------------------------------------------------

    def operation(self, service: str, action: str, topic: Topic[Any], qos: int | None,
                  tag: str, doc: str | None = None) -> None:
        key = self.channel(topic)
        note = self.topic_notes.get(topic.template, {})
        name = key if key not in self.operations else f"{key}{action.title()}{service.title()}"
        operation: dict[str, Any] = {"action": action, "channel": {"$ref": f"#/channels/{key}"}}
        summary = note.get("summary") if name == key else None
        first_line = (doc or "").strip().split("\n\n")[0]
        operation["summary"] = (summary or " ".join(first_line.split())
                                or f"{service}: {action} {topic.template}")
        if note.get("operation_description") and name == key:
            operation["description"] = note["operation_description"]
        operation["tags"] = [{"name": tag}]
        if qos is not None:
            operation["bindings"] = {"mqtt": {"qos": qos, "bindingVersion": _BINDING}}
        operation["messages"] = [{"$ref": f"#/channels/{key}/messages/{message}"}
                                 for message in self.channels[key]["messages"]]
        if isinstance(topic, Operation):
            operation["reply"] = {
                "address": {"$ref": "#/components/replyAddresses/replyTo"},
                "channel": {"$ref": "#/channels/reply"},
                "messages": [{"$ref": f"#/channels/reply/messages/{key}"}],
            }
        self.operations[name] = operation

    def service(self, service: Service) -> None:
        for handler in service.handlers:
            self.operation(service.name, "receive", handler.operation, handler.qos, service.name)
        for topic in service.publishes:
            self.operation(service.name, "send", topic, None, service.name)
        for listener in service.listeners:
            self.operation(service.name, "receive", listener.topic, listener.qos, service.name,
                           listener.func.__doc__)


def document(services: tuple[Service, ...] = SERVICES,
             notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """The AsyncAPI 3 document of ``services`` as a dict."""
    notes = notes if notes is not None else yaml.safe_load(NOTES.read_text(encoding="utf-8"))
    build = _Builder(notes)
    build.envelope_schemas()
    for service in services:
        build.service(service)
    # Every service says these about itself: one operation for all of them.
    for topic in (SERVICE_STATUS, REJECTED):
        build.operation("every service", "send", topic, 0, "service")
    reply_note = notes.get("reply", {})
    build.channels["reply"] = {
        "address": REPLY.template, "title": reply_note.get("title", "Replies"),
        "description": reply_note.get("description", REPLY.description),
        "parameters": {"client_id": {"$ref": "#/components/parameters/client_id"}},
        "messages": build.reply_messages,
    }
    components = dict(notes.get("components", {}))
    components["messages"] = build.messages
    components["schemas"] = build.schemas
    return {
        "asyncapi": "3.0.0",
        "info": notes.get("info", {"title": "mirrorhub MQTT API", "version": "0.1.0"}),
        "defaultContentType": "application/json",
        "servers": notes.get("servers", {}),
        "channels": build.channels,
        "operations": build.operations,
        "components": components,
    }


class _Dumper(yaml.SafeDumper):
    """Multi-line text as literal blocks, so the document reads like the prose it holds."""


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render(doc: dict[str, Any], header: str = _HEADER) -> str:
    return header + yaml.dump(doc, Dumper=_Dumper, sort_keys=False, width=100,
                              allow_unicode=True)
