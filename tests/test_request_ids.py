"""A request id follows one HTTP request across processes: from ``X-Request-ID`` (or made by
the bridge) through the MQTT envelope into the JSON log lines of an auth service running in a
process of its own (``MIRRORHUB_LOG_FORMAT=json``)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from starlette.requests import Request

from bridge.app import _crash
from broker.client import Bus
from broker.tracing import request_id
from schemas.auth import AUTH_LOGIN
from services.auth.accounts import Accounts
from tests.bridge.stack import bridge_at
from tests.conftest import Backend, isolated
from tests.roles import auth_process
from tests.support import overhear, unique


def lines_of(stderr: list[str]) -> list[dict[str, Any]]:
    """Every line of a JSON log, each one an object with the documented fields."""
    records = [json.loads(line) for line in stderr if line.strip()]
    for record in records:
        assert isinstance(record, dict)
        assert {"time", "level", "logger", "message", "process", "request_id"} <= record.keys()
    return records


async def test_a_request_id_reaches_the_services_log(backend: Backend, tmp_path: Path) -> None:
    scoped = isolated(backend)
    async with (auth_process(scoped, tmp_path, "--log-level", "DEBUG",
                             MIRRORHUB_LOG_FORMAT="json") as role,
                bridge_at(scoped) as http):
        login = {"username": "nobody-here", "password": "pw"}
        given = await http.post("/login", data=login, headers={"X-Request-ID": "trace-7.a:b"})
        made = await http.post("/login", data=login)
        forged = await http.post("/login", data=login,
                                 headers={"X-Request-ID": "two words " + "x" * 200})
    assert given.headers["x-request-id"] == "trace-7.a:b"
    generated = made.headers["x-request-id"]
    replaced = forged.headers["x-request-id"]
    assert len(generated) == 32 and replaced not in ("", generated)
    assert "two words" not in replaced  # an unusable id is replaced, never passed on

    records = lines_of(role.stderr)
    for rid in ("trace-7.a:b", generated, replaced):
        mine = [r for r in records if r["request_id"] == rid]
        assert any(AUTH_LOGIN.template in r["message"] and "login_failed" in r["message"]
                   for r in mine), f"no line of the auth service has {rid}"
    assert {r["process"] for r in records} == {role.process.pid}


async def test_the_envelope_carries_it_and_a_bad_one_is_refused_plainly(
    backend: Backend, auth_service: Accounts,
) -> None:
    """Old envelopes (without ``request_id``) are answered as before; one whose id could forge
    a log line gets a ``bad_request`` naming the field."""
    async with Bus(backend.bus("test")) as bus:
        reply_to = f"reply/{unique('probe')}"  # not the Bus's own: it keeps those to itself
        replies = await overhear(bus, reply_to)
        for rid, wanted in ((None, True), ("ok-id", True), ("bad\nid", False)):
            envelope: dict[str, Any] = {"id": "1", "reply_to": reply_to,
                                        "body": {"username": "nobody", "password": "x"}}
            if rid is not None:
                envelope["request_id"] = rid
            await bus.publish_raw(AUTH_LOGIN.template, envelope, qos=0)
            reply = json.loads((await asyncio.wait_for(replies.get(), 5)).payload)
            if wanted:
                assert reply["error"]["code"] == "login_failed"
            else:
                assert reply["error"]["code"] == "bad_request"
                assert reply["error"]["field"] == "request_id"


async def test_a_crash_reply_says_its_request_id_too() -> None:
    """The handler of unexpected exceptions answers outside the middleware that labels replies
    (bridge/app.py): it labels its own."""
    request = Request({"type": "http", "method": "POST", "path": "/face", "headers": [],
                       "query_string": b""})
    with request_id("crash-1"):
        response = await _crash(request, RuntimeError("boom"))
    assert response.status_code == 500 and response.headers["x-request-id"] == "crash-1"
