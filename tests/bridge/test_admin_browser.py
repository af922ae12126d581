"""The admin page in a real browser: Debian's chromium, headless, driven by Playwright (no
browser download: ``executable_path`` is Debian's binary). Skipped, with the reason, where
chromium or Playwright is absent (``apt-get install chromium``; README, "Tests").

An admin logs in; a simulated mirror (devices/mirror.py) comes online and the Mirrors page shows
it without a reload; a real photo at that mirror makes a recognition appear on the Recent
recognitions page, again without a reload; the admin deletes the face on the Faces page, and the
face is recognised no more. Every page is saved as a screenshot under test-artifacts/admin/
(git-ignored), one of them as a phone would show it. Every request the browser makes goes to
the bridge: the page loads nothing from anywhere else.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from devices.frames import FrameFolder
from devices.mirror import Mirror
from tests.bridge.admin_stack import ADMIN_PASSWORD, admin_stack
from tests.conftest import FACES, NO_PHOTOS, PHOTOS_ABSENT, Backend
from tests.support import unique

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "admin"
PHOTO = FACES / "train/obama/obama.jpg"
AT_MIRROR = FACES / "test/obama1.jpg"
WAIT_MS = 15_000

playwright_api = pytest.importorskip("playwright.async_api",
                                     reason="Playwright is not installed (pip install playwright)")


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.exists():
        pytest.skip(f"no chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    if PHOTOS_ABSENT:
        pytest.skip(NO_PHOTOS)
    return CHROMIUM


async def shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


async def unreloaded(page: Any) -> bool:
    """Whether the page still holds the marker set by :func:`mark` (a reload clears it)."""
    return bool(await page.evaluate("() => window.__mirrorhubMarker === 1"))


async def mark(page: Any) -> None:
    await page.evaluate("() => { window.__mirrorhubMarker = 1; }")


async def test_an_admin_watches_a_mirror_and_deletes_a_face(
        backend: Backend, tmp_path: Path, chromium: Path) -> None:
    if backend.name != "embedded+sqlite":
        pytest.skip("the browser test runs once, on the embedded broker (the HTTP tests of "
                    "the page run on both backends)")
    frames = tmp_path / "frames"
    frames.mkdir()
    shutil.copy(AT_MIRROR, frames / "obama1.jpg")
    async with (admin_stack(backend, tmp_path) as stack,
                playwright_api.async_playwright() as driver):
        browser = await driver.chromium.launch(
            executable_path=str(chromium), headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            context = await browser.new_context(viewport={"width": 1100, "height": 700})
            page = await context.new_page()
            page.set_default_timeout(WAIT_MS)
            requested: list[str] = []
            page.on("request", lambda request: requested.append(request.url))

            # 1. Log in.
            await page.goto(f"{stack.url}/admin")
            assert page.url.endswith("/admin/login")
            await shot(page, "1-login")
            await page.fill("#username", stack.admin)
            await page.fill("#password", ADMIN_PASSWORD)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{stack.url}/admin")
            await page.wait_for_selector("#live:text('live')")

            # 2. A mirror comes online: its row appears without a reload.
            await mark(page)
            mirror_id = unique("hall")
            async with Mirror(stack.backend.bus("test"), mirror_id, "MX-200") as mirror:
                row = page.locator("#mirrors tbody tr", has_text=mirror_id)
                await row.locator(".badge.online").wait_for()
                assert "MX-200" in await row.inner_text()
                assert await unreloaded(page)
                await shot(page, "2-mirrors")

                # 3. A recognition appears without a reload.
                enrolled = await stack.http.post(
                    "/api/face/register", data={"id": "obama"},
                    files={"file": ("obama.jpg", PHOTO.read_bytes())}, headers=stack.auth)
                assert enrolled.status_code == 201, enrolled.text
                await page.click("nav >> text=Recognitions")
                await page.wait_for_selector("#live:text('live')")
                await mark(page)
                await mirror.stream_frames(FrameFolder.open(frames), fps=4, count=2)
                seen = page.locator("#recognitions tbody tr", has_text="obama")
                await seen.wait_for()
                assert mirror_id in await seen.inner_text()
                assert await unreloaded(page)
                await shot(page, "3-recognitions")

                await page.click("nav >> text=Mirrors")  # who stands there now
                await page.locator("#mirrors tbody tr", has_text="obama").wait_for()
                await shot(page, "4-mirrors-someone-there")
                await page.set_viewport_size({"width": 390, "height": 780})
                await shot(page, "4-mirrors-phone")
                await page.set_viewport_size({"width": 1100, "height": 700})

                await page.click("nav >> text=Services")
                for service in ("auth", "vision", "messaging"):
                    await page.locator("#services tbody tr", has_text=service).locator(
                        ".badge.online").wait_for()
                await shot(page, "5-services")

                # 4. Delete the face: it is recognised no more.
                await page.click("nav >> text=Faces")
                face = page.locator("#faces tbody tr", has_text="obama")
                await face.wait_for()
                await shot(page, "6-faces")
                await face.locator("button.danger").click()
                await page.wait_for_selector("text=Face obama deleted.")
                assert await page.locator("#faces tbody tr", has_text="obama").count() == 0
                await shot(page, "7-face-deleted")
                found = await stack.http.post(
                    "/api/face/find", files={"file": ("o.jpg", AT_MIRROR.read_bytes())},
                    headers=stack.auth)
                assert found.status_code == 200 and found.json()["data"] == []
                await mirror.stream_frames(FrameFolder.open(frames), fps=4, count=2)
                await wait_for_unknown(mirror)
            await page.click("nav >> text=Mirrors")
            await page.locator("#mirrors tbody tr", has_text=mirror_id).locator(
                ".badge.offline").wait_for()
        finally:
            await browser.close()
    assert requested and all(url.startswith(stack.url) for url in requested), requested


async def wait_for_unknown(mirror: Mirror) -> None:
    """The mirror's face event names nobody (the face is still in view, unknown now)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while True:
        event = mirror.face_event
        if event is not None and event.faces and all(f.name is None for f in event.faces):
            return
        assert loop.time() < deadline, f"still recognised after the delete: {event}"
        await asyncio.sleep(0.1)
