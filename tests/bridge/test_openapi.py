"""``GET /openapi.json``: served to anybody, valid OpenAPI 3.1, exactly the routes the bridge
serves (no more, no fewer) but those that are no part of the API (``NOT_API``: HTML for
people, nothing that answers JSON), every failure in its family's own shape."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bridge import liveness_spec
from bridge.app import create_app
from bridge.openapi import DECLARED, FAMILIES, NOT_API, document, served
from bridge.spec import JSON, Endpoint, Reply
from broker.settings import BrokerURL, BusSettings

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def routes() -> list[BaseRoute]:
    return create_app(BusSettings(BrokerURL())).routes


def described(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


def differences(doc: dict[str, Any], table: list[BaseRoute]) -> dict[str, set[tuple[str, str]]]:
    """What the routes serve that the document leaves out (but for what is no part of the
    API), and what it describes that no route serves."""
    return {"undocumented": served(table) - set(NOT_API) - described(doc),
            "no such route": described(doc) - served(table)}


async def test_anybody_may_read_it(http: httpx.AsyncClient) -> None:
    plain = await http.get("/openapi.json")
    assert plain.status_code == 200, plain.text
    assert plain.headers["content-type"] == "application/json"
    assert plain.json()["openapi"] == "3.1.0"
    # A credential of any kind, good or bad, changes nothing: it is not asked for.
    for headers in ({"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eDp5"},
                    {"Cookie": "X-LIVENESS-TOKEN=forged"}):
        again = await http.get("/openapi.json", headers=headers)
        assert (again.status_code, again.json()) == (200, plain.json())
    wrong = await http.post("/openapi.json")
    assert wrong.status_code == 405


async def test_it_describes_every_route_and_no_other(http: httpx.AsyncClient) -> None:
    doc = (await http.get("/openapi.json")).json()
    assert differences(doc, routes()) == {"undocumented": set(), "no such route": set()}
    assert len(described(doc)) > 40


# The modules of the routes outside the API, and the content types each answers: the admin
# page's HTML and event stream, Prometheus's text format.
OUTSIDE = {"bridge.admin_page": ("text/html",),
           "bridge.admin_events": ("text/html", "text/event-stream"),
           "bridge.metrics": ("text/plain",)}


def _table() -> dict[tuple[str, str], Route]:
    return {(method, route.path): route for route in routes() if isinstance(route, Route)
            for method in route.methods or () if method != "HEAD"}


def test_what_is_no_part_of_the_api_is_served_and_only_pages_and_metrics() -> None:
    """Every route of NOT_API is served, is not in the document, and is the admin page's or
    /metrics; and every route of those modules is listed: none is half in the document."""
    table = _table()
    assert set(NOT_API) <= set(table)
    assert not set(NOT_API) & described(document(routes()))
    for key in NOT_API:
        assert table[key].endpoint.__module__ in OUTSIDE, key
    assert {key for key, route in table.items()
            if route.endpoint.__module__ in OUTSIDE} == set(NOT_API)


async def test_what_is_no_part_of_the_api_answers_no_json(http: httpx.AsyncClient) -> None:
    """Each route of NOT_API, asked without a session, answers its module's kind of text (the
    login form, why it refuses, the metrics) or sends a browser to the login page."""
    table = _table()
    for method, path in NOT_API:
        reply = await http.request(method, path.replace("{id}", "someone"))
        if reply.status_code == 303:
            assert reply.headers["location"] == "/admin/login", (method, path)
            continue
        wanted = OUTSIDE[table[(method, path)].endpoint.__module__]
        assert reply.headers["content-type"].startswith(wanted), (method, path, reply)
        assert reply.status_code in (200, 401, 403), (method, path, reply.status_code)


async def _nothing(request: Request) -> JSONResponse:
    return JSONResponse({})


def test_a_route_left_out_or_made_up_is_a_difference() -> None:
    """The comparison above fails both ways: a route without a declaration (a new family whose
    ``ENDPOINTS`` is not in bridge.openapi.DECLARED yet), and a declaration without a route."""
    extra = Route("/presence/check", _nothing, methods=["POST"], name="presence_check")
    assert differences(document(routes()), [*routes(), extra]) == {
        "undocumented": {("POST", "/presence/check")}, "no such route": set()}
    made_up = Endpoint("DELETE", "/login", "mirror", "Nothing", {200: Reply("Nothing.")})
    assert differences(document(routes(), (*DECLARED, made_up)), routes()) == {
        "undocumented": set(), "no such route": {("DELETE", "/login")}}


class _Challenge(BaseModel):
    challenge: str


def test_a_new_familys_declarations_are_picked_up_like_the_others() -> None:
    """What a family adds (its routes, and its ENDPOINTS to DECLARED) is in the document, with
    its route's name, docstring and models, like every other family's."""

    async def challenge(request: Request) -> JSONResponse:
        """Ask for a head turn."""
        return JSONResponse({"challenge": "left"})

    route = Route("/presence/check", challenge, methods=["POST"], name="presence_check")
    endpoint = Endpoint("POST", "/presence/check", "presence", "A challenge",
                        {200: Reply("The challenge.", (_Challenge,))})
    doc = document([*routes(), route], (*DECLARED, endpoint))
    assert differences(doc, [*routes(), route]) == {"undocumented": set(), "no such route": set()}
    operation = doc["paths"]["/presence/check"]["post"]
    assert (operation["operationId"], operation["description"]) == ("presence_check",
                                                                    "Ask for a head turn.")
    assert operation["responses"]["200"]["content"][JSON]["schema"] == {
        "$ref": "#/components/schemas/_Challenge"}
    assert "_Challenge" in doc["components"]["schemas"]


def test_it_is_valid_openapi_3_1() -> None:
    doc = document(routes())
    schemathesis.openapi.from_dict(doc).validate()  # the OpenAPI 3.1 meta-schema
    ids = [operation["operationId"] for item in doc["paths"].values()
           for operation in item.values()]
    assert sorted(set(ids)) == sorted(ids)
    text = str(doc)
    for name in doc["components"]["schemas"]:
        assert f"#/components/schemas/{name}" in text, f"{name} is never used"


def _refs(schema: dict[str, Any]) -> set[str]:
    listed = schema.get("anyOf", [schema])
    return {entry["$ref"].rsplit("/", 1)[1] for entry in listed}


# The failure models of each family (docs/http-api.md), by tag; seed 000's narrow Fail000.
SHAPES = {family.tag: {model.__name__ for model in family.failures} for family in FAMILIES}


def test_every_failure_is_in_its_familys_shape() -> None:
    doc = document(routes())
    schemas = doc["components"]["schemas"]
    for path, item in doc["paths"].items():
        for method, operation in item.items():
            if path == "/openapi.json":
                continue
            shapes = SHAPES[operation["tags"][0]]
            statuses = {int(status) for status in operation["responses"]}
            # Liveness answers a failure of the bridge or of vision as a 503, never a 500.
            failing = {503, 504} if operation["tags"] == [liveness_spec.TAG] else {500, 503, 504}
            assert failing <= statuses or path == "/", (method, path)
            for status, reply in operation["responses"].items():
                if int(status) < 400:
                    continue
                for name in _refs(reply["content"][JSON]["schema"]):
                    # Seed 000's failures narrow Fail000's ``type`` to the route's own.
                    base = "Fail000" if name.endswith("Fail") else name
                    assert base in shapes, (method, path, status, name)
                    if base == "Fail000":
                        assert schemas[name]["properties"]["result"] == {"const": "fail",
                                                                         "title": "Result",
                                                                         "type": "string"}


def test_liveness_takes_either_credential_of_a_user_and_repeated_frames() -> None:
    """What docs/http-api.md says of liveness: a user's bearer token or seed 004's cookie,
    either enough alone; ``frames`` as 2 to 30 file parts; no 500 (a failure is a 503)."""
    doc = document(routes())
    for path in ("/liveness/challenge", "/liveness/verify"):
        operation = doc["paths"][path]["post"]
        assert operation["security"] == [{"userBearer": []}, {"sessionCookie": []}]
        assert "500" not in operation["responses"], path
    verify = doc["paths"]["/liveness/verify"]["post"]
    assert list(verify["requestBody"]["content"]) == ["multipart/form-data"]
    frames = doc["components"]["schemas"]["LivenessFields"]["properties"]["frames"]
    assert (frames["minItems"], frames["maxItems"], frames["items"]["format"]) == (2, 30,
                                                                                   "binary")
