"""The admin page's face thumbnails (services/vision/crops.py), on both backends: kept only
with ``MIRRORHUB_KEEP_FACE_CROPS=1``, shown to a logged-in admin only, gone with their face,
exported with their user, and removed once keeping them is turned off."""

from __future__ import annotations

import base64
import dataclasses
import re
from collections.abc import AsyncIterator

import cv2
import numpy as np
import pytest

from bridge.admin_session import SESSION
from broker.client import Bus
from schemas.export import VISION_EXPORT, UserExportRequest
from services.vision.crops import THUMBNAIL_PX
from services.vision.service import run_vision
from tests.bridge.admin_stack import AdminStack, admin_stack
from tests.bridge.test_admin_page import PAGES, enrol
from tests.bridge.user_api import account
from tests.conftest import Backend, photo
from tests.support import unique

_IMG = re.compile(r'<img class="thumb" src="([^"]+)"')


@pytest.fixture(scope="module")
async def stack(backend: Backend,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminStack]:
    async with admin_stack(backend, tmp_path_factory.mktemp("thumbs"),
                           keep_face_crops=True) as opened:
        yield opened


@pytest.fixture(scope="module")
async def plain(backend: Backend,
                tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[AdminStack]:
    """A stack as it is by default: no crops kept."""
    async with admin_stack(backend, tmp_path_factory.mktemp("plain")) as opened:
        yield opened


def decoded(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG OpenCV can read"
    return image


async def test_a_kept_crop_is_shown_to_an_admin_and_goes_with_its_face(
        stack: AdminStack) -> None:
    subject = unique("obama")
    await enrol(stack, subject)
    async with stack.client() as browser:
        csrf = await stack.log_in(browser)
        page = await browser.get("/admin/faces")
        (src,) = _IMG.findall(page.text)
        assert src == f"/admin/faces/{subject}/thumbnail"
        assert 'id="no-thumbnails"' not in page.text
        thumb = await browser.get(src)
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert thumb.headers["cache-control"] == "private, no-store"
        height, width = decoded(thumb.content).shape[:2]
        assert max(height, width) == THUMBNAIL_PX and min(height, width) >= THUMBNAIL_PX // 2
        # The crop is of the face: the face in Obama's photo is far smaller than the photo.
        whole = decoded(photo("train/obama/obama.jpg"))
        assert max(whole.shape[:2]) > 3 * THUMBNAIL_PX
        # The seed 002 API shows no more than it did.
        listed = await browser.get(f"/api/face/{subject}", headers=stack.auth)
        assert "thumbnail" not in listed.json()["data"]
        # Deleted through the page: the crop goes with the photo.
        gone = await browser.post(f"/admin/faces/{subject}/delete", data={"csrf": csrf})
        assert gone.status_code == 303
        after = await browser.get(src)
        assert after.status_code == 404 and f"face {subject} not found" in after.text


async def test_nobody_but_an_admin_sees_a_thumbnail(stack: AdminStack) -> None:
    subject = unique("obama")
    await enrol(stack, subject)
    path = f"/admin/faces/{subject}/thumbnail"
    async with stack.client() as http:
        user = await account(http)
        user_token = user.headers["Authorization"].removeprefix("Bearer ")
        # Nobody, a user's token as the cookie, an admin's API token as a Bearer (no session).
        for headers in ({}, {"cookie": f"{SESSION}={user_token}"},
                        {"authorization": f"Bearer {stack.token}"}):
            async with stack.client() as other:
                refused = await other.get(path, headers=headers)
                assert (refused.status_code, refused.headers.get("location")) == (
                    303, "/admin/login"), headers
                assert not refused.headers.get("content-type", "").startswith("image")
    async with stack.client() as admin:
        await stack.log_in(admin)
        assert (await admin.get(path)).status_code == 200
        unknown = await admin.get(f"/admin/faces/{unique('nobody')}/thumbnail")
        assert unknown.status_code == 404 and "not found" in unknown.text


async def test_a_users_kept_crops_are_in_their_export(stack: AdminStack) -> None:
    """What `mirrorhub export` gathers from vision carries the crop kept with each photo."""
    subject = unique("obama")
    await enrol(stack, subject)
    async with Bus(stack.backend.bus("test")) as bus:
        reply = await bus.request(VISION_EXPORT,
                                  UserExportRequest(username=subject, user_id=2**31 - 1))
    (face,) = reply.faces
    (photo,) = face.photo_dates
    assert photo.face_crop is not None
    assert max(decoded(photo.face_crop).shape[:2]) == THUMBNAIL_PX
    dumped = reply.model_dump(mode="json")["faces"][0]["photo_dates"][0]["face_crop"]
    assert base64.b64decode(dumped) == photo.face_crop


async def test_by_default_no_crop_is_kept_and_none_is_shown(plain: AdminStack) -> None:
    subject = unique("obama")
    await enrol(plain, subject)
    async with plain.client() as browser:
        await plain.log_in(browser)
        page = await browser.get("/admin/faces")
        assert subject in page.text and not _IMG.findall(page.text)
        assert 'id="no-thumbnails"' in page.text
        none = await browser.get(f"/admin/faces/{subject}/thumbnail")
        assert none.status_code == 404 and "no kept face crop" in none.text
        for path in PAGES:
            assert (await browser.get(path)).status_code == 200


async def test_turned_off_the_kept_crops_are_removed_at_start(stack: AdminStack) -> None:
    """A vision service started on the same database without the setting removes every crop
    kept so far: the page shows none, the route has none."""
    subject = unique("obama")
    await enrol(stack, subject)
    async with stack.client() as browser:
        await stack.log_in(browser)
        assert (await browser.get(f"/admin/faces/{subject}/thumbnail")).status_code == 200
        off = dataclasses.replace(stack.vision, keep_face_crops=False)
        async with run_vision(stack.backend.bus("vision"), off):
            page = await browser.get("/admin/faces")
            assert subject in page.text and not _IMG.findall(page.text)
            none = await browser.get(f"/admin/faces/{subject}/thumbnail")
            assert none.status_code == 404
