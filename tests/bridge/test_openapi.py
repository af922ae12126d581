"""``GET /openapi.json``: served to anybody, valid OpenAPI 3.1, exactly the routes the bridge
serves (no more, no fewer), every failure in its family's own shape."""

from __future__ import annotations

from typing import Any

import httpx
import schemathesis
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bridge.app import create_app
from bridge.openapi import DECLARED, FAMILIES, document, served
from bridge.spec import JSON, Endpoint, Reply
from broker.settings import BrokerURL, BusSettings

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def routes() -> list[BaseRoute]:
    return create_app(BusSettings(BrokerURL())).routes


def described(doc: dict[str, Any]) -> set[tuple[str, str]]:
    return {(method.upper(), path) for path, item in doc["paths"].items()
            for method in item if method in METHODS}


def differences(doc: dict[str, Any], table: list[BaseRoute]) -> dict[str, set[tuple[str, str]]]:
    """What the routes serve that the document leaves out, and what it describes that no
    route serves."""
    return {"undocumented": served(table) - described(doc),
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


async def _nothing(request: Request) -> JSONResponse:
    return JSONResponse({})


def test_a_route_left_out_or_made_up_is_a_difference() -> None:
    """The comparison above fails both ways: a route without a declaration (a new family whose
    ``ENDPOINTS`` is not in bridge.openapi.DECLARED yet), and a declaration without a route."""
    extra = Route("/liveness/challenge", _nothing, methods=["POST"], name="liveness_challenge")
    assert differences(document(routes()), [*routes(), extra]) == {
        "undocumented": {("POST", "/liveness/challenge")}, "no such route": set()}
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

    route = Route("/liveness/challenge", challenge, methods=["POST"], name="liveness_challenge")
    endpoint = Endpoint("POST", "/liveness/challenge", "liveness", "A challenge",
                        {200: Reply("The challenge.", (_Challenge,))})
    doc = document([*routes(), route], (*DECLARED, endpoint))
    assert differences(doc, [*routes(), route]) == {"undocumented": set(), "no such route": set()}
    operation = doc["paths"]["/liveness/challenge"]["post"]
    assert (operation["operationId"], operation["description"]) == ("liveness_challenge",
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
            assert {500, 503, 504} <= statuses or path == "/", (method, path)
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
