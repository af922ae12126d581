"""The OpenAPI 3.1 document of the bridge, generated from the declarations and the routes table;
served at ``GET /openapi.json`` to anybody (it says nothing the docs do not).

Each operation comes from one :class:`~bridge.spec.Endpoint` (its fields, content types,
credentials and replies by status, all pydantic models) and from the route that serves it (its
``operationId`` is the route's name, its description the endpoint function's docstring, its path
parameters the route's). The schemas are the models' JSON Schemas (2020-12, as OpenAPI 3.1
takes them). tests/bridge/test_openapi.py checks that the declarations and the routes are the
same set, both ways, but for :data:`NOT_API`, the routes that are no part of the API.

A new family's routes appear in the document once its declarations (a
:class:`~bridge.spec.Family`) are in :data:`FAMILIES`, the one place to add them: its routes
without them fail the test.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bridge import (
    face_admin_spec,
    liveness_spec,
    messaging_spec,
    mirror_spec,
    session_spec,
    user_spec,
)
from bridge.spec import HEADERS, JSON, Auth, Endpoint, Family, Link, Reply

_REF = "#/components/schemas/{model}"

META_TAG = "meta"
OPENAPI = Endpoint("GET", "/openapi.json", META_TAG, "This document (OpenAPI 3.1)",
                   {200: Reply("The document.")})

# Every family, in the order the document lists them. A family added to the bridge (its
# routes in bridge/app.py) adds its declarations (its ``*_spec.FAMILY``) here.
FAMILIES: tuple[Family, ...] = (
    mirror_spec.FAMILY,
    messaging_spec.FAMILY,
    face_admin_spec.FAMILY,
    user_spec.FAMILY,
    session_spec.FAMILY,
    liveness_spec.FAMILY,
)
DECLARED: tuple[Endpoint, ...] = (
    *(endpoint for family in FAMILIES for endpoint in family.endpoints), OPENAPI)

# Routes the bridge serves that are not part of the API this document describes, for apps:
# * the admin page (bridge/admin_page.py, admin_events.py), HTML for people in a browser. Its
#   contract is its forms and pages (a cookie session, a CSRF token in every form, redirects
#   to the login page, an event stream of HTML rows), which no client generated from this
#   document could use and no schema of it would check; it is tested as a page
#   (tests/bridge/test_admin_page.py, test_admin_browser.py);
# * /metrics (bridge/metrics.py), for the operator's Prometheus: its body is Prometheus's own
#   text format, specified by Prometheus and named by its content type, not a schema of ours
#   (docs/operations.md, Metrics). Its one refusal, a 401 when MIRRORHUB_METRICS_TOKEN is set
#   and not sent, is seed 000's JSON failure, as docs/http-api.md says.
# tests/bridge/test_openapi.py checks that the list holds those modules' routes, all of them,
# and that each answers its own kind of text.
NOT_API: dict[tuple[str, str], str] = {
    ("GET", "/admin"): "the admin page: Mirrors",
    ("GET", "/admin/login"): "the admin page: its login form",
    ("POST", "/admin/login"): "the admin page: its login form, sent",
    ("POST", "/admin/logout"): "the admin page: its logout button",
    ("GET", "/admin/faces"): "the admin page: Faces",
    ("POST", "/admin/faces/{id}/delete"): "the admin page: a face's delete button",
    ("GET", "/admin/faces/{id}/thumbnail"): "the admin page: a face's kept crop (JPEG)",
    ("GET", "/admin/recognitions"): "the admin page: Recent recognitions",
    ("GET", "/admin/services"): "the admin page: Services",
    ("GET", "/admin/events"): "the admin page's server-sent events (rows of HTML)",
    ("GET", "/metrics"): "Prometheus's scrape of the bridge's metrics",
}

TAGS = [*({"name": family.tag, "description": family.description} for family in FAMILIES),
        {"name": META_TAG, "description": "About the API itself."}]

SECURITY_SCHEMES: dict[str, Any] = {
    Auth.USER.value: {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "A user's token from /login, /api/login or seed 004's cookie."},
    Auth.ADMIN.value: {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
        "description": "An admin's token from /jwt/login (refused where a user's is wanted, "
                       "and the other way round)."},
    Auth.SESSION.value: {"type": "apiKey", "in": "cookie", "name": "X-LIVENESS-TOKEN",
                         "description": "Set by POST /auth/login."},
}


def _methods(route: Route) -> list[str]:
    """The route's methods, less the HEAD Starlette adds to every GET."""
    methods = route.methods or set()
    return sorted(m for m in methods if m != "HEAD" or "GET" not in methods)


def _refs(value: object) -> set[str]:
    """The names of the component schemas ``value`` refers to, at any depth."""
    found: set[str] = set()
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str):
                found.add(ref.rsplit("/", 1)[1])
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def served(routes: Iterable[BaseRoute]) -> set[tuple[str, str]]:
    """Every (method, path) the routes table answers."""
    return {(method, route.path) for route in routes if isinstance(route, Route)
            for method in _methods(route)}


class _Builder:
    def __init__(self, routes: Sequence[BaseRoute], endpoints: Sequence[Endpoint]) -> None:
        self.routes = {(method, route.path): route for route in routes
                       if isinstance(route, Route) for method in _methods(route)}
        self.endpoints = endpoints
        models: dict[type[BaseModel], None] = {}
        for endpoint in endpoints:
            for model in (endpoint.body, endpoint.query, endpoint.headers):
                if model is not None:
                    models[model] = None
            for reply in endpoint.replies.values():
                models.update(dict.fromkeys(reply.models))
        keys, schema = models_json_schema([(model, "validation") for model in models],
                                          ref_template=_REF)
        self.refs = {model: keys[(model, "validation")] for model in models}
        self.schemas: dict[str, Any] = schema.get("$defs", {})
        # pydantic qualifies the names of two models named alike with their modules: the
        # document's names are the models' own, so one of them wants another name.
        twice = sorted(name for name in self.schemas if "__" in name)
        if twice:
            raise ValueError(f"two models named alike: {twice}; rename one")

    def operation_id(self, method: str, path: str) -> str:
        route = self.routes.get((method, path))
        name = route.name if route else path.strip("/").replace("/", "_") or "root"
        several = route is not None and len(_methods(route)) > 1
        return f"{name}_{method.lower()}" if several else name

    def fields(self, model: type[BaseModel], where: str) -> list[dict[str, Any]]:
        """One parameter for each field of ``model`` (a header's name is its alias)."""
        schema = self.schemas[self.refs[model]["$ref"].rsplit("/", 1)[1]]
        required = set(schema.get("required", ()))
        out = []
        for name, field_schema in schema.get("properties", {}).items():
            parameter = {"name": name, "in": where, "required": name in required,
                         "schema": field_schema}
            if "description" in field_schema:
                parameter["description"] = field_schema["description"]
            out.append(parameter)
        return out

    def reply(self, reply: Reply) -> dict[str, Any]:
        if len(reply.models) > 1:
            schema: dict[str, Any] = {"anyOf": [self.refs[m] for m in reply.models]}
        elif reply.models:
            schema = dict(self.refs[reply.models[0]])
        elif reply.media_type == JSON:
            schema = {"type": "object"}
        else:
            schema = {"type": "string", "format": "binary"}
        out: dict[str, Any] = {"description": reply.description,
                               "content": {reply.media_type: {"schema": schema}}}
        if reply.headers:
            out["headers"] = {name: {"description": HEADERS[name], "schema": {"type": "string"}}
                              for name in reply.headers}
        if reply.links:
            out["links"] = {link.name: self.link(link) for link in reply.links}
        return out

    def link(self, link: Link) -> dict[str, Any]:
        out: dict[str, Any] = {"operationId": self.operation_id(link.method, link.path)}
        if link.parameters:
            out["parameters"] = dict(link.parameters)
        if link.body is not None:
            out["requestBody"] = dict(link.body)
        return out

    def operation(self, endpoint: Endpoint) -> dict[str, Any]:
        method, path = endpoint.key
        route = self.routes.get(endpoint.key)
        out: dict[str, Any] = {"operationId": self.operation_id(method, path),
                               "tags": [endpoint.tag], "summary": endpoint.summary}
        doc = inspect.getdoc(route.endpoint) if route else None
        if doc:
            out["description"] = doc
        parameters: list[dict[str, Any]] = []
        for name in (route.param_convertors if route else ()):
            parameters.append({"name": name, "in": "path", "required": True,
                               "schema": {"type": "string", "minLength": 1}})
        if endpoint.query is not None:
            parameters += self.fields(endpoint.query, "query")
        if endpoint.headers is not None:
            parameters += self.fields(endpoint.headers, "header")
        if parameters:
            out["parameters"] = parameters
        if endpoint.body is not None:
            ref = self.refs[endpoint.body]
            out["requestBody"] = {"required": True, "content": {
                media: {"schema": dict(ref)} for media in endpoint.content}}
        if endpoint.schemes:
            out["security"] = [{scheme.value: []} for scheme in endpoint.schemes] + (
                [{}] if endpoint.auth_optional else [])
        out["responses"] = {str(status): self.reply(reply)
                            for status, reply in sorted(endpoint.replies.items())}
        return out

    def document(self) -> dict[str, Any]:
        paths: dict[str, dict[str, Any]] = {}
        for endpoint in self.endpoints:
            paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = \
                self.operation(endpoint)
        # Query and header models are written out as parameters: only the schemas the
        # operations refer to (and those they refer to) are kept.
        used: set[str] = set()
        pending = _refs(paths)
        while pending:
            name = pending.pop()
            used.add(name)
            pending |= _refs(self.schemas[name]) - used
        schemas = {name: schema for name, schema in self.schemas.items() if name in used}
        return {
            "openapi": "3.1.0",
            "info": {"title": "mirrorhub bridge", "version": "0.1.0",
                     "description": "The HTTP API of the mirrorhub bridge: every family of "
                                    "docs/http-api.md, generated from the routes and their "
                                    "declarations (bridge/*_spec.py). The admin page "
                                    "(/admin...), HTML for people, and /metrics, for "
                                    "Prometheus, are not part of it."},
            "tags": TAGS,
            "paths": paths,
            "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
        }


def document(routes: Sequence[BaseRoute],
             endpoints: Sequence[Endpoint] = DECLARED) -> dict[str, Any]:
    """The OpenAPI document of ``endpoints`` as served by ``routes``."""
    return _Builder(routes, endpoints).document()


async def serve(request: Request) -> JSONResponse:
    """Public, like the docs it is generated with: it names no account and no secret. Made
    from the app's own routes on the first request, then kept (``app.state.openapi``)."""
    cached: dict[str, Any] | None = getattr(request.app.state, "openapi", None)
    if cached is None:
        cached = document(request.app.routes)
        request.app.state.openapi = cached
    return JSONResponse(cached)


routes = [Route("/openapi.json", serve, methods=["GET"], name="openapi")]
