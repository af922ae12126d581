"""What each HTTP endpoint reads and answers, declared as data: the source of ``/openapi.json``.

Every family declares its endpoints next to its routes (``bridge/*_spec.py``): one
:class:`Endpoint` per route and method, with the pydantic models of what it reads (body, query,
headers) and of every reply it documents, by status, failures included in the family's own
shape. :mod:`bridge.openapi` turns the declarations and the routes table into the document;
tests/bridge/test_openapi.py fails when a route has no declaration or a declaration no route.

The models here describe the wire; the bridge does not validate with them (the services'
request models in ``schemas/`` do), so a field's rules are the same ``Annotated`` types.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.config import JsonDict

from schemas.auth import Email, PersonName, ProfileKey
from schemas.names import Username

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"
# What bridge.forms.read_fields reads: the fields of every endpoint that reads fields.
FIELDS = (JSON, FORM, MULTIPART)

# The documented names with what their validators check said in the schema too, so that data
# made from the document is mostly valid: no control characters, not only spaces.
PRINTABLE: JsonDict = {"pattern": r"^[^\x00-\x1f\x7f]*[^\x00-\x20\x7f][^\x00-\x1f\x7f]*$"}
Name = Annotated[Username, Field(json_schema_extra=PRINTABLE)]
Person = Annotated[PersonName, Field(json_schema_extra=PRINTABLE)]
Profile = Annotated[ProfileKey, Field(json_schema_extra=PRINTABLE)]
Mail = Annotated[Email, Field(json_schema_extra={"format": "email"})]

# Replies never carry a field the model does not name: the document says so
# (``additionalProperties: false``), so a reply that grows one fails its schema check.
REPLY = ConfigDict(extra="forbid")


class Auth(StrEnum):
    """The credentials an endpoint takes (the document's ``securitySchemes``)."""

    USER = "userBearer"  # Authorization: Bearer <a user's token, from any family's login>
    ADMIN = "adminBearer"  # Authorization: Bearer <an admin's token, from /jwt/login>
    SESSION = "sessionCookie"  # seed 004's X-LIVENESS-TOKEN cookie


# Response headers an endpoint may send, by name: what each one means.
HEADERS: dict[str, str] = {
    "Retry-After": "Seconds until a throttled login or reset may be tried again.",
    "Set-Cookie": "The session cookie X-LIVENESS-TOKEN (HttpOnly, SameSite=Lax, Path=/).",
    "Content-Disposition": "attachment, with the file's name (RFC 6266).",
    "ETag": "The SHA-256 of the file's bytes, quoted.",
    "Allow": "The methods the path takes.",
}


@dataclass(frozen=True)
class Link:
    """A stateful link (OpenAPI ``links``): what a reply gives the next call. ``parameters``
    and ``body`` are runtime expressions, e.g. ``{"header.Authorization": "Bearer
    {$response.body#/token}"}``."""

    name: str
    method: str
    path: str
    parameters: Mapping[str, str] = field(default_factory=dict)
    body: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Reply:
    """One documented status: its body is one of ``models`` (JSON), or, without models, bytes
    of ``media_type``."""

    description: str
    models: tuple[type[BaseModel], ...] = ()
    media_type: str = JSON
    headers: tuple[str, ...] = ()
    links: tuple[Link, ...] = ()


@dataclass(frozen=True)
class Endpoint:
    """One method of one route. ``body`` is read as any of ``content``; ``query`` and
    ``headers`` name their fields (a header's by its alias). ``auth`` is required unless
    ``auth_optional`` (sent, it is checked); several are alternatives, any one will do."""

    method: str
    path: str
    tag: str
    summary: str
    replies: Mapping[int, Reply]
    body: type[BaseModel] | None = None
    content: tuple[str, ...] = FIELDS
    query: type[BaseModel] | None = None
    headers: type[BaseModel] | None = None
    auth: Auth | tuple[Auth, ...] | None = None
    auth_optional: bool = False

    @property
    def key(self) -> tuple[str, str]:
        return (self.method.upper(), self.path)

    @property
    def schemes(self) -> tuple[Auth, ...]:
        """The credentials it takes, each enough alone."""
        if self.auth is None:
            return ()
        return (self.auth,) if isinstance(self.auth, Auth) else self.auth


@dataclass(frozen=True)
class Family:
    """One API family's declarations: its tag in the document, its endpoints, and the models
    its failures take (a family's failure models are these or narrow them, as subclasses)."""

    tag: str
    description: str
    endpoints: tuple[Endpoint, ...]
    failures: tuple[type[BaseModel], ...]


class Fields(BaseModel):
    """Request fields: unknown ones are ignored, as the bridge ignores them."""

    model_config = ConfigDict(extra="allow")


class Idempotent(BaseModel):
    key: str | None = Field(default=None, alias="Idempotency-Key", max_length=64,
                            description="A retry with the same key stores nothing new; an "
                                        "empty one is none.")


def fail_model(name: str, base: type[BaseModel], **fields: Any) -> type[BaseModel]:
    """A failure model ``name`` of a family's ``base`` with ``fields`` added or narrowed
    (each a ``(type, default or FieldInfo)`` pair, as :func:`pydantic.create_model` takes)."""
    made: type[BaseModel] = create_model(name, __base__=base, **fields)
    return made


def one_of(*values: str) -> Any:
    """A string field that is one of ``values`` (an ``enum`` in the document)."""
    return (str, Field(json_schema_extra={"enum": list(values)}))


def _joined(first: Reply, then: Reply) -> Reply:
    """One status that two tables name: either body, either description."""
    if first.media_type != then.media_type:
        raise ValueError(f"one status, two media types: {first.media_type}, {then.media_type}")
    described = first.description if then.description in first.description else (
        f"{first.description} Or: {then.description}")
    return Reply(described, tuple(dict.fromkeys((*first.models, *then.models))),
                 first.media_type, tuple(dict.fromkeys((*first.headers, *then.headers))),
                 (*first.links, *then.links))


def merged(*tables: Mapping[int, Reply]) -> dict[int, Reply]:
    """Reply tables joined; a status that several name may be answered any of their ways
    (a family's token failure and a route's own 422, say)."""
    out: dict[int, Reply] = {}
    for table in tables:
        for status, reply in table.items():
            out[status] = _joined(out[status], reply) if status in out else reply
    return dict(sorted(out.items()))
