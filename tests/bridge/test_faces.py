"""Face enrolment and recognition over HTTP: bridge -> MQTT -> vision -> database, real photos."""

from __future__ import annotations

from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from tests.conftest import FACES, needs_photos
from tests.support import unique

pytestmark = [
    pytest.mark.usefixtures("bridge_url"),
    needs_photos,
]


def photo(relative: str) -> tuple[str, bytes, str]:
    path = FACES / relative
    kind = "image/png" if path.suffix == ".png" else "image/jpeg"
    return path.name, path.read_bytes(), kind


@pytest.fixture(scope="module")
async def prefix(bridge_url: str) -> str:
    """Enrol train/ once per backend, names prefixed so runs never meet."""
    tag = unique("t")
    async with httpx.AsyncClient(base_url=bridge_url, timeout=60) as http:
        for index, path in enumerate(sorted((FACES / "train").glob("*/*"))):
            # seed 000 calls the field displayname, seed 001 username: both work
            key = "displayname" if index % 2 else "username"
            reply = await http.post(
                "/register/face",
                data={key: f"{tag}-{path.parent.name}"},
                files={"face_image": photo(str(path.relative_to(FACES)))},
            )
            assert reply.json() == {"result": "success", "type": "register_face"}, reply.text
    return tag


async def test_every_test_face_is_named(http: httpx.AsyncClient, prefix: str) -> None:
    expected = {
        "test/obama1.jpg": {"obama"},
        "test/alex_lacamoire1.jpg": {"alex_lacamoire"},
        "test/johnsnow_test1.jpg": {"kit_harington"},
        "test/kit_with_rose.jpg": {"kit_harington", "rose_leslie"},
        "test/obama_and_biden.jpg": {"obama", "biden", "unknown"},  # a third person behind
    }
    for relative, names in expected.items():
        reply = await http.request("GET", "/face", files={"face_image": photo(relative)})
        body = reply.json()
        assert body["result"] == "success" and body["type"] == "face", body
        found = {f["name"].removeprefix(f"{prefix}-") for f in body["faces"]}
        assert found == names, relative
        assert body["face"] == body["faces"][0]["name"]  # the largest face


async def test_post_works_like_get_and_unknown_is_named_unknown(
    http: httpx.AsyncClient, prefix: str
) -> None:
    reply = await http.post("/face", files={"face_image": photo("test/obama1.jpg")})
    assert reply.json()["face"] == f"{prefix}-obama"
    # obama_and_biden.jpg has a third, small face of somebody nobody enrolled
    both = photo("test/obama_and_biden.jpg")
    body = (await http.post("/face", files={"face_image": both})).json()
    unknown = [f for f in body["faces"] if not f["known"]]
    assert len(unknown) == 1 and unknown[0]["name"] == "unknown"
    assert unknown[0]["distance"] > 0.6  # farther than the default threshold from everyone


async def test_no_face_gets_the_fail_reply(http: httpx.AsyncClient) -> None:
    blank = np.full((480, 640, 3), 128, np.uint8)
    png = cv2.imencode(".png", blank)[1].tobytes()
    reply = await http.post("/face", files={"face_image": ("blank.png", png, "image/png")})
    assert reply.status_code == 200
    assert reply.json() == {"result": "fail", "type": "face",
                            "message": "No face found in the image", "field": "face_image"}


async def test_enrolment_needs_exactly_one_face(http: httpx.AsyncClient) -> None:
    reply = await http.post("/register/face", data={"displayname": unique()},
                            files={"face_image": photo("test/kit_with_rose.jpg")})
    body = reply.json()
    assert body["result"] == "fail" and body["type"] == "register_face"
    assert "found 2 faces" in body["message"]


async def test_bad_uploads_get_save_image_fails(http: httpx.AsyncClient, tmp_path: Path) -> None:
    not_image = await http.post("/register/face", data={"displayname": unique()},
                                files={"face_image": ("x.jpg", b"hello", "image/jpeg")})
    assert not_image.json()["type"] == "save_image"
    assert not_image.json()["result"] == "fail"
    truncated = photo("test/obama1.jpg")[1][:5000]
    reply = await http.post("/face", files={"face_image": ("t.jpg", truncated, "image/jpeg")})
    assert reply.json()["type"] == "save_image"
    missing = await http.post("/register/face", data={"displayname": unique()})
    assert missing.status_code == 400 and missing.json()["field"] == "face_image"
    nameless = await http.post("/register/face", files={"face_image": photo("test/obama1.jpg")})
    assert nameless.status_code == 400 and nameless.json()["field"] == "displayname"


async def test_distance_of_the_same_photo_at_half_size_doubles(http: httpx.AsyncClient) -> None:
    image = cv2.imread(str(FACES / "misc/obama-1080p.jpg"))
    half = cv2.resize(image, None, fx=0.5, fy=0.5, interpolation=cv2.INTER_AREA)
    readings = []
    for picture in (image, half):
        jpeg = cv2.imencode(".jpg", picture)[1].tobytes()
        reply = await http.request("GET", "/distance",
                                   files={"distance_image": ("d.jpg", jpeg, "image/jpeg")})
        body = reply.json()
        assert body["result"] == "success" and body["type"] == "distance", body
        readings.append(body["distance"])
    assert readings[0] > 0 and abs(readings[1] / readings[0] - 2) < 0.1


async def test_distance_without_a_face_is_zero(http: httpx.AsyncClient) -> None:
    blank = cv2.imencode(".png", np.full((240, 320, 3), 90, np.uint8))[1].tobytes()
    reply = await http.post("/distance", files={"distance_image": ("b.png", blank, "image/png")})
    body = reply.json()
    assert (body["result"], body["type"], body["distance"]) == ("fail", "distance", 0)


async def test_personal_color_names_a_season(http: httpx.AsyncClient) -> None:
    reply = await http.request("GET", "/personal_color",
                               files={"face_image": photo("test/obama1.jpg")})
    body = reply.json()
    assert body["result"] == "success" and body["type"] == "personal_color", body
    assert body["tone"] in {"spring", "summer", "autumn", "winter"}
    assert body["undertone"] in {"warm", "cool"} and body["depth"] in {"light", "deep"}
    again = await http.post("/personal_color", files={"face_image": photo("test/obama1.jpg")})
    assert again.json() == body  # deterministic
