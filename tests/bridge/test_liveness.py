"""Liveness over HTTP (``/liveness/challenge``, ``/liveness/verify``): who may ask, what passes,
what fails and why, on both backends (two vision workers behind ``$share`` on Mosquitto).

Genuine motion: frames 134 to 142 of ``video/hamilton`` (his head turns to his left; played
backwards, to his right). Photo attacks: tests/services/vision/attacks.py, a still printed,
tilted and moved before the camera, blurred, noisy and re-compressed.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import httpx
import numpy as np
import pytest

from bridge.app import create_app
from bridge.server import serving
from services.auth.service import run_auth
from services.vision.images import decode_image
from tests.bridge.face_stack import FaceStack, blank_png, face_stack
from tests.bridge.test_session_api import login as session_login
from tests.bridge.test_session_api import register as session_register
from tests.bridge.test_session_api import with_cookie
from tests.bridge.user_api import account
from tests.conftest import (
    FACES,
    Backend,
    auth_settings,
    create_database,
    drop_database,
    isolated,
    needs_photos,
)
from tests.services.vision.attacks import Still, attack, print_of
from tests.support import free_port

pytestmark = needs_photos

BACK = range(134, 143)
STILLS = ["test/obama1.jpg", "train/rose_leslie/img2.jpg"]
SEED = 11


def hamilton(numbers: range | list[int]) -> list[bytes]:
    return [(FACES / f"video/hamilton/frame_{n:03d}.jpg").read_bytes() for n in numbers]


def fail(reason: str) -> dict[str, Any]:
    return {"result": "fail", "type": "liveness", "live": False, "score": 0.0, "reason": reason}


@dataclass
class Users:
    stack: FaceStack
    headers: dict[str, str]  # a user's token as Authorization: Bearer (seed 000's /login)
    cookie: dict[str, str]  # another user's, in seed 004's X-LIVENESS-TOKEN cookie

    @property
    def http(self) -> httpx.AsyncClient:
        return self.stack.http

    async def challenge(self, action: str | None = None,
                        headers: dict[str, str] | None = None) -> dict[str, Any]:
        """A challenge for the bearer user (or ``headers``' one), asking for ``action`` when
        given (the direction is drawn at random)."""
        headers = self.headers if headers is None else headers
        for _ in range(64):
            reply = await self.http.post("/liveness/challenge", headers=headers)
            assert reply.status_code == 200, reply.text
            body: dict[str, Any] = reply.json()
            if action is None or body["steps"][0]["action"] == action:
                return body
        raise AssertionError(f"no {action} in 64 challenges")

    async def verify(self, frames: list[bytes], challenge_id: str | None = None,
                     headers: dict[str, str] | None = None) -> httpx.Response:
        files = [("frames", (f"f{index}.jpg", frame, "image/jpeg"))
                 for index, frame in enumerate(frames)]
        data = {"challenge_id": challenge_id} if challenge_id else {}
        headers = self.headers if headers is None else headers
        return await self.http.post("/liveness/verify", files=files, data=data,
                                    headers=headers, timeout=60)


@pytest.fixture(scope="module")
async def users(backend: Backend, tmp_path_factory: pytest.TempPathFactory
                ) -> AsyncIterator[Users]:
    async with face_stack(backend, tmp_path_factory.mktemp("liveness")) as stack:
        bearer = await account(stack.http)
        token = await session_login(stack.http, await session_register(stack.http))
        stack.http.cookies.clear()  # sent only where a test says so
        yield Users(stack, bearer.headers, with_cookie(token))


@pytest.fixture(scope="module")
def stills(users: Users) -> list[Still]:
    engine = users.stack.workers[0].engine  # dlib, loaded already
    found = []
    for relative in STILLS:
        image = decode_image((FACES / relative).read_bytes())
        found.append(print_of(Path(relative).stem, image, engine.locate(image)[0]))
    return found


async def test_only_logged_in_users_may_ask(users: Users) -> None:
    http = users.http
    admin = users.stack.auth  # a face admin's token is not a user's
    for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic eA=="},
                    admin, with_cookie("not-a-token")):
        for path in ("/liveness/challenge", "/liveness/verify"):
            reply = await http.post(path, headers=headers)
            assert reply.status_code == 401, (path, headers, reply.text)
            body = reply.json()
            assert body | {"reason": ""} == fail(""), body
            assert "token" in body["reason"]
    # Refused before the frames are read or sent on.
    refused = await users.verify(hamilton(BACK), headers={})
    assert refused.status_code == 401
    for headers in (users.headers, users.cookie):
        reply = await http.post("/liveness/challenge", headers=headers)
        assert reply.status_code == 200
        body = reply.json()
        assert body.keys() == {"result", "type", "challenge_id", "steps", "expires_in"}
        assert body["result"] == "success" and body["type"] == "liveness"
        assert body["expires_in"] == 60


async def test_the_genuine_head_turn_passes_passive_and_its_own_challenge(users: Users) -> None:
    passive = await users.verify(hamilton(BACK), headers=users.cookie)
    body = passive.json()
    assert passive.status_code == 200 and body["result"] == "success", body
    assert body["live"] is True and body["reason"] == "passive: the head turned"
    assert body["score"] >= 1
    opposite = await users.verify(hamilton(BACK), (await users.challenge("turn_right"))[
        "challenge_id"])
    assert opposite.status_code == 200 and opposite.json()["result"] == "fail"
    assert opposite.json()["reason"].startswith("challenge: turned -"), opposite.json()
    for action, frames in (("turn_left", hamilton(BACK)), ("turn_right", hamilton(BACK)[::-1])):
        asked = await users.challenge(action)
        assert asked["steps"] == [{"action": action,
                                   "prompt": f"turn your head to your {action[5:]}"}]
        passed = await users.verify(frames, asked["challenge_id"])
        assert passed.status_code == 200
        assert passed.json() | {"score": 1} == {
            "result": "success", "type": "liveness", "live": True, "score": 1,
            "reason": f"challenge: the head turned {action[5:]}"}
        # Used once: refused by every worker after (two behind $share on Mosquitto).
        for _ in range(4):
            again = await users.verify(frames, asked["challenge_id"])
            assert said(again) == (200, fail("the challenge was used already; ask for a new"
                                             " one"))


async def test_photo_attacks_fail_passive_and_challenged(users: Users,
                                                         stills: list[Still]) -> None:
    rng = np.random.default_rng(SEED)
    for still, action in zip(stills, ("turn_left", "turn_right"), strict=True):
        frames = attack(still, 8, rng, math.radians(30))
        passive = (await users.verify(frames)).json()
        assert passive["live"] is False and passive["reason"].startswith("passive: "), passive
        asked = await users.challenge(action)
        verdict = (await users.verify(frames, asked["challenge_id"])).json()
        assert verdict["result"] == "fail" and verdict["live"] is False, verdict
        assert verdict["reason"].startswith("challenge: "), verdict


def said(reply: httpx.Response) -> tuple[int, Any]:
    return reply.status_code, reply.json()


def tiny_jpeg() -> bytes:
    ok, data = cv2.imencode(".jpg", np.full((8, 8, 3), 90, np.uint8))
    assert ok
    return bytes(data)


async def test_every_failure_says_why(users: Users) -> None:
    one, six = hamilton([132]), hamilton(BACK[:6])
    group = (FACES / "test/kit_with_rose.jpg").read_bytes()
    other = (FACES / "test/obama1.jpg").read_bytes()
    theirs = (await users.challenge(headers=users.cookie))["challenge_id"]
    mine = (await users.challenge())["challenge_id"]
    cases: list[tuple[list[bytes], str | None, str]] = [
        (one, None, "1 frames; send 2 to 30"),
        ([tiny_jpeg()] * 31, None, "31 frames; send 2 to 30"),
        ([*one, b"not an image"], None, "frame 2: the upload is not a JPEG or PNG image"),
        ([*one, one[0][:4000]], None, "frame 2: the JPEG data stops before its EOI marker"),
        ([blank_png(), *one], None, "frame 1: no face"),
        ([*one, group], None, "frame 2: 2 faces; film one person alone"),
        ([*six[:3], other], None, "frame 4 shows somebody else than frame 1"),
        (six, "made-up", "the challenge is not one of ours (forged, altered or malformed)"),
        (six, mine[:-3] + "abc",
         "the challenge is not one of ours (forged, altered or malformed)"),
        (six, theirs, "the challenge was made for another user"),
    ]
    for frames, challenge_id, reason in cases:
        assert said(await users.verify(frames, challenge_id)) == (200, fail(reason)), reason
    text = await users.http.post("/liveness/verify", headers=users.headers,
                                 files=[("frames", ("a.jpg", one[0]))], data={"frames": "x"})
    assert said(text) == (200, fail("frame 1: not a file (send a JPEG or PNG)"))


async def test_bodies_that_are_no_form_and_paths_answer_in_the_family_shape(
        users: Users) -> None:
    http, headers = users.http, users.headers
    multipart = "send multipart/form-data with 2 to 30 frames fields"
    reply = await http.post("/liveness/verify", json={"frames": []}, headers=headers)
    assert said(reply) == (415, fail(multipart))
    broken = await http.post("/liveness/verify", content=b"--x\r\nnonsense", headers={
        **headers, "Content-Type": "multipart/form-data"})
    assert said(broken) == (400, fail("malformed form: Missing boundary in multipart."))
    assert said(await http.get("/liveness/verify")) == (405, fail("Method Not Allowed"))
    assert said(await http.post("/liveness/nothing")) == (404, fail("Not Found"))
    big = await users.verify([b"\xff\xd8" + bytes(10_500_000)] * 2)
    assert big.status_code == 413 and big.json() | {"reason": ""} == fail("")


async def test_without_vision_the_bridge_answers_504(backend: Backend, tmp_path: Path) -> None:
    own = isolated(backend)
    url = await create_database(backend, "auth-liveness")
    port = free_port()
    try:
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(
                run_auth(own.bus("auth"), auth_settings(tmp_path, url, None)))
            bridge = create_app(own.bus("bridge", request_timeout=1.0))
            await stack.enter_async_context(serving(bridge, "127.0.0.1", port))
            http = await stack.enter_async_context(
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30))
            user = await account(http)
            reply = await http.post("/liveness/challenge", headers=user.headers)
            assert said(reply) == (504, fail("the service did not answer within 1 s"))
    finally:
        await drop_database(url)
