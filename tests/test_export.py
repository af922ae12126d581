"""``mirrorhub export USER``: a user with messages (sent and received), a layout, a file and a
face enrolled with their token is exported whole, gathered over MQTT from each service, with
the face's photo count and dates and no embedding; the command prints the same as JSON and
says plainly when there is no such user."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from broker.client import Bus
from mirrorhub.export import gather
from tests.bridge.test_messaging import register, send
from tests.bridge.user_api import account, upload
from tests.conftest import FACES, Backend, needs_photos
from tests.roles import ROOT, cli_env
from tests.support import unique

pytestmark = needs_photos


def keys_of(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node) | {key for value in node.values() for key in keys_of(value)}
    if isinstance(node, list):
        return {key for value in node for key in keys_of(value)}
    return set()


async def export_command(backend: Backend, username: str) -> tuple[int, str, str]:
    env = cli_env(backend)
    command = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mirrorhub.cli", "export", username, env=env, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(command.communicate(), 90)
    return command.returncode or 0, out.decode(), err.decode()


@pytest.mark.timeout(180)
async def test_a_user_is_exported_whole(http: httpx.AsyncClient, backend: Backend) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    ann = await account(http, unique("ann"))
    bob = await register(http)
    assert (await send(http, bob, ann.name, "hello ann")).json()["result"] == "success"
    assert (await send(http, ann.name, bob, "hi bob")).json()["result"] == "success"
    assert (await send(http, bob, bob, "not ann's")).json()["result"] == "success"
    model = unique("model")
    layout = await http.post("/widgets_custom", json={
        "model_code": model, "index": {"quote": [2, 2]}, "username": ann.name})
    assert layout.json()["result"] == "success", layout.text
    assert (await upload(http, ann, "image", "cat.png", b"\x89PNG\r\n\x1a\n" + b"0" * 64)
            ).status_code == 200
    face = await http.post("/register/face", headers=ann.headers, data={"username": ann.name},
                           files={"face_image": (FACES / "train/obama/obama.jpg").read_bytes()})
    assert face.json()["result"] == "success", face.text

    async with Bus(backend.bus("test")) as bus:
        document = await gather(bus, ann.name)
    account_part = document["account"]
    assert account_part["username"] == ann.name and account_part["email"]
    assert [(m["direction"], m["content"]) for m in document["messages"]] == [
        ("received", "hello ann"), ("sent", "hi bob")]
    assert [(lay["model_code"], lay["positions"]) for lay in document["layouts"]] == [
        (model, {"quote": [2, 2]})]
    [stored] = document["files"]
    assert (stored["file_type"], stored["file_name"], stored["size"]) == ("image", "cat.png", 72)
    [enrolled] = document["faces"]
    assert (enrolled["id"], enrolled["photos"]) == (ann.name, 1)
    [photo] = enrolled["photo_dates"]
    assert photo["bound"] and datetime.fromisoformat(photo["enrolled_at"]) >= before
    # Nothing that is a secret or stands for the face itself.
    assert not keys_of(document) & {"vector", "embedding", "password_hash", "photo_sha256",
                                    "token", "sha256"}

    code, out, err = await export_command(backend, ann.name)
    assert code == 0, err[-2000:]
    printed = json.loads(out)
    assert {k: v for k, v in printed.items() if k != "exported_at"} == {
        k: v for k, v in document.items() if k != "exported_at"}
    code, out, err = await export_command(backend, unique("nobody"))
    assert (code, out) == (2, "") and "no user" in err.splitlines()[-1]
