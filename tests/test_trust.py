"""End to end over HTTP and MQTT: a face unlocks messages at a mirror only when it was enrolled
with its user's token, and a deleted account leaves no face, message, layout or token behind.

Everything is real and in its own namespace and databases: auth, vision (dlib, the shared
photos; two workers where the broker has shared subscriptions), messaging, the bridge and the
mirror simulator.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import httpx

from devices.frames import FrameFolder
from devices.mirror import Mirror
from schemas.messaging import Display
from schemas.vision import RecogniseRequest
from tests.conftest import FACES, Backend, needs_photos
from tests.support import unique
from tests.test_mirror_experience import MODEL, login, services

pytestmark = needs_photos


def photo(relative: str) -> dict[str, tuple[str, bytes]]:
    path = FACES / relative
    return {"face_image": (path.name, path.read_bytes())}


async def register(http: httpx.AsyncClient, prefix: str) -> str:
    name = unique(prefix)
    form = {"username": name, "password": "pw", "email": f"{name}@example.com"}
    assert (await http.post("/register/user", data=form)).json()["result"] == "success"
    return name


async def send(http: httpx.AsyncClient, sender: str, receiver: str, content: str) -> None:
    sent = await http.post("/send_message", data={
        "sender_username": sender, "receiver_username": receiver, "content": content})
    assert sent.json()["result"] == "success", sent.text


@contextlib.asynccontextmanager
async def at_mirror(own: Backend, tmp_path: Path, test_photo: str) -> AsyncIterator[Mirror]:
    """A simulated mirror whose camera shows ``test_photo`` four times a second."""
    frames = tmp_path / unique("camera")
    frames.mkdir()
    shutil.copy(FACES / test_photo, frames / Path(test_photo).name)
    async with Mirror(own.bus("test"), unique("hall"), MODEL) as mirror:
        camera = asyncio.create_task(mirror.stream_frames(FrameFolder.open(frames), fps=4))
        try:
            yield mirror
        finally:
            camera.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await camera


async def displays_for(mirror: Mirror, seconds: float) -> list[Display]:
    """Every display the mirror is told over the next ``seconds``."""
    told: list[Display] = []
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            while True:
                told.append(await mirror.wait_display(lambda d: d not in told, timeout=seconds))
    return told


async def test_only_a_face_enrolled_with_its_users_token_shows_messages(
    backend: Backend, tmp_path: Path
) -> None:
    workers = 1 if backend.shared_group is None else 2
    async with (
        services(backend, tmp_path, workers) as (url, own, _),
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        ann, bob, cara = [await register(http, name) for name in ("ann", "bob", "cara")]
        # ann's face, enrolled without a token: it greets her by name, nothing more.
        for name in ("obama.jpg", "obama2.jpg"):
            enrolled = await http.post("/register/face", data={"displayname": ann},
                                       files=photo(f"train/obama/{name}"))
            assert enrolled.json() == {"result": "success", "type": "register_face"}
        # Somebody else's token, a bad one, a header that is not a bearer token: refused.
        other = await http.post("/register/face", data={"displayname": ann},
                                headers=await login(http, bob),
                                files=photo("train/obama/obama.jpg"))
        assert other.status_code == 403
        assert other.json() == {"result": "fail", "type": "register_face",
                                "message": f"the token belongs to {bob}, not to {ann}",
                                "field": "displayname"}
        for header in ("Bearer not-a-token", "Basic YW5uOnB3"):
            bad = await http.post("/register/face", data={"username": ann},
                                  headers={"Authorization": header},
                                  files=photo("train/obama/obama.jpg"))
            assert bad.status_code == 401 and bad.json()["type"] == "register_face", bad.text
            assert "field" not in bad.json()
        # cara's face, enrolled with her token (seed 001's field name): it unlocks her messages.
        enrolled = await http.post("/register/face", data={"username": cara},
                                   headers=await login(http, cara),
                                   files=photo("train/alex_lacamoire/img1.jpg"))
        assert enrolled.json() == {"result": "success", "type": "register_face"}
        for receiver in (ann, cara):
            await send(http, bob, receiver, f"hello {receiver}")

        async with at_mirror(own, tmp_path, "test/obama1.jpg") as mirror:
            greeted = await mirror.wait_display(lambda d: d.user == ann, timeout=20)
            assert (greeted.state, greeted.unlocked, greeted.messages) == ("present", False, [])
            later = await displays_for(mirror, 1.5)  # six more frames of ann
            assert all(d.messages == [] for d in later)
        listed = (await http.get(f"/get_messages/{ann}")).json()["messages"]
        assert [(m["content"], m["read"]) for m in listed] == [(f"hello {ann}", False)]

        async with at_mirror(own, tmp_path, "test/alex_lacamoire1.jpg") as mirror:
            shown = await mirror.wait_display(lambda d: d.user == cara, timeout=20)
            assert shown.unlocked
            assert [(m.sender, m.content) for m in shown.messages] == [(bob, f"hello {cara}")]
        listed = (await http.get(f"/get_messages/{cara}")).json()["messages"]
        assert [m["read"] for m in listed] == [True]


async def test_a_deleted_account_leaves_nothing_behind(backend: Backend, tmp_path: Path) -> None:
    workers = 1 if backend.shared_group is None else 2
    async with (
        services(backend, tmp_path, workers) as (url, own, vision),
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        ann, bob = await register(http, "ann"), await register(http, "bob")
        bearer = await login(http, ann)
        for name in ("obama.jpg", "obama2.jpg"):
            enrolled = await http.post("/register/face", data={"username": ann}, headers=bearer,
                                       files=photo(f"train/obama/{name}"))
            assert enrolled.json() == {"result": "success", "type": "register_face"}
        await send(http, bob, ann, "dinner?")
        await send(http, ann, bob, "yes, at 8")
        # Her uploads (seed 003), one of them with the same bytes as one of bob's.
        picture = (FACES / "train/obama/obama.jpg").read_bytes()
        bob_bearer = await login(http, bob)
        for who, name in ((bearer, "dinner.jpg"), (bob_bearer, "same.jpg")):
            up = await http.post("/api/upload", data={"type": "photos"}, headers=who,
                                 files={"file": (name, picture)})
            assert up.json() == {"message": "uploaded file successfully"}
        layout = '{"calendar": [1, 1], "messages": [2, 1]}'
        saved = await http.post("/widgets_custom", data={"model_code": MODEL, "index": layout,
                                                         "username": ann}, headers=bearer)
        assert saved.json()["message"] == "New Widget"

        async with at_mirror(own, tmp_path, "test/obama1.jpg") as mirror:
            shown = await mirror.wait_display(lambda d: d.user == ann, timeout=20)
            assert shown.unlocked and [m.content for m in shown.messages] == ["dinner?"]

            # ann deletes her account through seed 004, with its cookie.
            cookie = await http.post("/auth/login", json={"username": ann, "password": "pw"})
            assert cookie.json()["message"] == "Login successfully!"
            deleted = await http.delete("/user/delete")
            assert deleted.json() == {"status_code": 200,
                                      "message": "Successfully deleted user!"}

            # The mirror goes idle (at once, or once the frames recognised before the
            # deletion have passed) and stays so while her face is still in front of it.
            idle = await mirror.wait_display(lambda d: d.state == "idle", timeout=5)
            assert idle.user is None and idle.messages == []
            told = await displays_for(mirror, 1.5)
            assert all(d.state == "idle" for d in told), told

        # Every vision worker has forgotten her face; /face says so, whichever worker answers.
        for worker in vision:
            assert worker.gallery.count(ann) == 0
            seen = await worker.recognise(RecogniseRequest(image=(FACES / "test/obama1.jpg")
                                                           .read_bytes()))
            assert [face.name for face in seen.faces] == [None]
        for _ in range(4):
            face = (await http.post("/face", files=photo("test/obama1.jpg"))).json()
            assert face["face"] == "unknown", face
        # Her messages are gone from bob's list, her layout is gone, her tokens are refused.
        assert (await http.get(f"/get_messages/{bob}")).json()["messages"] == []
        gone = (await http.get(f"/get_messages/{ann}")).json()
        assert gone["message"] == "Not Found User"
        widgets = await http.get("/get_widgets_custom",
                                 params={"model_code": MODEL, "username": ann})
        assert widgets.json()["message"] == "Not Found Widget"
        assert (await http.get("/whoami", headers=bearer)).status_code == 401
        assert (await http.get("/home")).status_code == 401
        # Her files are gone: a new account of the same name finds none of them, while bob's
        # copy of the same bytes is still his.
        again = {"username": ann, "password": "pw-2", "first_name": "New", "last_name": "Ann"}
        assert (await http.post("/api/register", data=again)).status_code == 201
        token = (await http.post("/api/login", data=again)).json()["access_token"]
        mine = await http.get("/api/download", params={"type": "photos", "name": "dinner.jpg"},
                              headers={"Authorization": f"Bearer {token}"})
        assert (mine.status_code, mine.json()) == (404, {"message": "your file not found"})
        his = await http.get("/api/download", params={"type": "photos", "name": "same.jpg"},
                             headers=bob_bearer)
        assert (his.status_code, his.content) == (200, picture)
