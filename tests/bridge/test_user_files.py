"""Seed 003's files over HTTP: /api/upload and /api/download, bridge -> MQTT -> messaging
service -> its disk, with the seed's replies and the choices docs/http-api.md writes down."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tracemalloc
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
from starlette.requests import Request

from bridge.user_files import FORM_SLACK, has_file
from broker.client import Bus
from schemas.files import MAX_UPLOAD_DEFAULT
from services.messaging.service import Messaging
from tests.bridge.user_api import (
    Account,
    Form,
    account,
    download,
    field,
    file,
    system,
    upload,
)
from tests.conftest import Backend, in_database_of, photo

pytestmark = pytest.mark.usefixtures("bridge_url")

# A real JPEG, made here: these tests are about files, not about whose face is in them.
JPEG = cv2.imencode(".jpg", np.full((48, 64, 3), (40, 120, 200), np.uint8))[1].tobytes()
UPLOADED = {"message": "uploaded file successfully"}
MISSING = {"message": "missing file"}
BAD_KEY = {"message": "invalid type of name"}
NOT_FOUND = {"message": "your file not found"}
NO_HEADER = {"msg": "Missing Authorization Header"}


async def post_form(http: httpx.AsyncClient, who: Account, form: Form) -> httpx.Response:
    return await http.post("/api/upload", content=form.body,
                           headers={**who.headers, **form.headers})


async def test_upload_then_download_the_same_bytes(http: httpx.AsyncClient) -> None:
    ann = await account(http)
    reply = await upload(http, ann, "profile", "me.jpg", JPEG)
    assert (reply.status_code, reply.json()) == (200, UPLOADED)
    got = await download(http, ann, "profile", "me.jpg")
    assert got.status_code == 200 and got.content == JPEG
    assert got.headers["content-type"] == "image/jpeg"
    assert got.headers["content-length"] == str(len(JPEG))
    assert got.headers["content-disposition"] == 'attachment; filename="me.jpg"'
    assert got.headers["x-content-type-options"] == "nosniff"
    assert got.headers["etag"] == f'"{hashlib.sha256(JPEG).hexdigest()}"'

    again = await upload(http, ann, "profile", "me.jpg", b"GIF89a replaced")  # same key
    assert again.json() == UPLOADED
    replaced = await download(http, ann, "profile", "me.jpg")
    assert (replaced.content, replaced.headers["content-type"]) == (b"GIF89a replaced",
                                                                   "image/gif")


async def test_a_file_is_its_owners_alone(http: httpx.AsyncClient) -> None:
    ann, bob = await account(http), await account(http)
    assert (await upload(http, ann, "profile", "me.jpg", JPEG)).json() == UPLOADED
    for who, type_, name in ((bob, "profile", "me.jpg"), (ann, "photos", "me.jpg"),
                             (ann, "profile", "you.jpg"), (ann, "profile", "ME.jpg")):
        reply = await download(http, who, type_, name)
        assert (reply.status_code, reply.json()) == (404, NOT_FOUND)
    # Bob's own file of that key is another file.
    assert (await upload(http, bob, "profile", "me.jpg", b"bob's")).json() == UPLOADED
    assert (await download(http, bob, "profile", "me.jpg")).content == b"bob's"
    assert (await download(http, ann, "profile", "me.jpg")).content == JPEG


@pytest.mark.parametrize(("sent", "stored"), [
    ("../../etc/passwd", "passwd"),
    ("/etc/hosts", "hosts"),
    ("C:\\Users\\ann\\me.png", "me.png"),
    ("photos/../../me.png", "me.png"),
    ("Zoë 🪞 résumé.pdf", "Zoë 🪞 résumé.pdf"),
])
async def test_a_file_name_is_stored_as_its_last_segment(
    http: httpx.AsyncClient, sent: str, stored: str
) -> None:
    ann = await account(http)
    assert (await upload(http, ann, "docs", sent, b"%PDF-1.4 x")).json() == UPLOADED
    got = await download(http, ann, "docs", stored)
    assert got.status_code == 200 and got.content == b"%PDF-1.4 x"
    if sent != stored:  # the path as sent is no name at all
        reply = await download(http, ann, "docs", sent)
        assert (reply.status_code, reply.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize("filename", [
    b"..", b"photos/..", b"dir/", b"a\x00b.png", b"tab\there", b"x" * 256, b"   ",
    b"\xff\xfe.png",  # not UTF-8
])
async def test_names_that_are_no_name_are_refused(
    http: httpx.AsyncClient, messaging_service: Messaging, filename: bytes
) -> None:
    ann = await account(http)
    blobs = messaging_service.files.blobs.count()
    reply = await post_form(http, ann, Form(field("type", "docs"), file(filename, JPEG)))
    assert (reply.status_code, reply.json()) == (404, BAD_KEY)
    assert messaging_service.files.blobs.count() == blobs


@pytest.mark.parametrize("query", [
    {"type": "docs", "name": "../me.png"}, {"type": "docs", "name": "/etc/passwd"},
    {"type": "docs", "name": "a\x00b"}, {"type": "docs", "name": "x" * 256},
    {"type": "docs"}, {"name": "me.png"}, {"type": "Docs", "name": "me.png"}, {},
])
async def test_downloads_of_malformed_keys_are_not_found(
    http: httpx.AsyncClient, query: dict[str, str]
) -> None:
    ann = await account(http)
    reply = await http.get("/api/download", params=query, headers=ann.headers)
    assert (reply.status_code, reply.json()) == (404, NOT_FOUND)


@pytest.mark.parametrize("type_", ["Profile", "a b", "", "x" * 33, "../up", "é", None])
async def test_a_malformed_or_missing_type_is_refused(
    http: httpx.AsyncClient, type_: str | None
) -> None:
    ann = await account(http)
    reply = await upload(http, ann, type_, "me.jpg", JPEG)
    assert (reply.status_code, reply.json()) == (404, BAD_KEY)


async def test_the_type_may_follow_the_file(http: httpx.AsyncClient) -> None:
    ann = await account(http)
    form = Form(file("me.jpg", JPEG), field("note", "ignored"), field("type", "profile"))
    assert (await post_form(http, ann, form)).json() == UPLOADED
    assert (await download(http, ann, "profile", "me.jpg")).content == JPEG


@pytest.mark.parametrize("form", [
    Form(field("type", "profile")),  # no file part
    Form(field("type", "profile"), field("file", "just text")),  # a field, not a file
    Form(field("type", "profile"), file("", b"")),  # a browser's "no file chosen"
    Form(field("type", "profile"), file("empty.txt", b"")),  # a 0-byte file
])
async def test_no_file_or_an_empty_one_is_a_missing_file(
    http: httpx.AsyncClient, messaging_service: Messaging, form: Form
) -> None:
    ann = await account(http)
    blobs = messaging_service.files.blobs.count()
    reply = await post_form(http, ann, form)
    assert (reply.status_code, reply.json()) == (404, MISSING)
    assert messaging_service.files.blobs.count() == blobs
    assert messaging_service.files.uploads_going() == 0


@pytest.mark.parametrize("body", [{"json": {"type": "profile", "file": "x"}},
                                  {"data": {"type": "profile"}}, {}])
async def test_a_body_that_is_no_form_is_a_missing_file(
    http: httpx.AsyncClient, body: dict[str, object]
) -> None:
    ann = await account(http)
    reply = await http.post("/api/upload", headers=ann.headers, **body)  # type: ignore[arg-type]
    assert (reply.status_code, reply.json()) == (404, MISSING)


async def test_a_malformed_form_and_two_files_are_400s(http: httpx.AsyncClient) -> None:
    ann = await account(http)
    two = Form(field("type", "profile"), file("a.jpg", JPEG), file("b.jpg", JPEG))
    reply = await post_form(http, ann, two)
    assert reply.status_code == 400 and "one file" in reply.json()["message"]
    cut = Form(field("type", "profile"), file("a.jpg", JPEG))
    reply = await http.post("/api/upload", content=cut.body[:-200],
                            headers={**ann.headers, **cut.headers})
    assert reply.status_code == 400 and reply.json()["message"].startswith("malformed form")
    long = Form(field("type", "profile"), file("a.jpg", JPEG))
    long.boundary = "b" * 300  # more than python-multipart takes
    reply = await post_form(http, ann, long)
    assert reply.status_code == 400 and reply.json()["message"].startswith("malformed form")


async def test_the_same_bytes_twice_are_stored_once(
    http: httpx.AsyncClient, messaging_service: Messaging
) -> None:
    ann, bob = await account(http), await account(http)
    data = os.urandom(300_000)  # bytes no other test stores
    blobs = messaging_service.files.blobs.count()
    for who, name in ((ann, "one.bin"), (ann, "two.bin"), (bob, "one.bin")):
        assert (await upload(http, who, "raw", name, data)).json() == UPLOADED
    assert messaging_service.files.blobs.count() == blobs + 1
    path = messaging_service.files.blobs.path(hashlib.sha256(data).hexdigest())
    assert path.read_bytes() == data
    await in_database_of(messaging_service, messaging_service.files.forget(ann.name))
    assert path.exists()  # bob's file still names it
    await in_database_of(messaging_service, messaging_service.files.forget(bob.name))
    assert not path.exists()


async def test_the_content_type_is_the_bytes_not_the_clients(http: httpx.AsyncClient) -> None:
    ann = await account(http)
    png = photo("misc/32bit.png")
    for name, data, sniffed in (("photo.png", JPEG, "image/jpeg"),  # named and sent as PNG
                                ("photo.jpg", png, "image/png"),
                                ("page.html", b"<html><script>x</script></html>",
                                 "application/octet-stream")):
        form = Form(field("type", "x"), file(name, data))
        sent = form.body.replace(b"application/octet-stream", b"image/png")
        reply = await http.post("/api/upload", content=sent,
                                headers={**ann.headers, **form.headers})
        assert reply.json() == UPLOADED
        got = await download(http, ann, "x", name)
        assert got.headers["content-type"] == sniffed and got.content == data


async def test_a_file_over_the_cap_is_a_413_and_nothing_is_kept(
    http: httpx.AsyncClient, bridge_url: str, messaging_service: Messaging, tmp_path: Path
) -> None:
    ann = await account(http)
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(MAX_UPLOAD_DEFAULT + 1))
    blobs = messaging_service.files.blobs.count()
    form = Form(field("type", "raw"), file("big.bin", b""))
    too_large = {"message": f"file too large: the limit is {MAX_UPLOAD_DEFAULT} bytes"}
    # Streamed without a length (chunked): refused as the bytes arrive.
    reply = await http.post("/api/upload", content=form.stream(big),
                            headers={**ann.headers, **form.headers})
    assert (reply.status_code, reply.json()) == (413, too_large)
    # With a Content-Length beyond the limit: refused before a byte of the body is sent.
    url = httpx.URL(bridge_url)
    assert url.port is not None
    reader, writer = await asyncio.open_connection(url.host, url.port)
    head = {**ann.headers, **form.headers,
            "Content-Length": str(MAX_UPLOAD_DEFAULT + FORM_SLACK + 1)}
    writer.write(b"POST /api/upload HTTP/1.1\r\nHost: bridge\r\n"
                 + "".join(f"{k}: {v}\r\n" for k, v in head.items()).encode() + b"\r\n")
    async with asyncio.timeout(10):
        answered = await reader.readuntil(b"}")
    writer.close()
    status, _, body = answered.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 413 ")
    assert json.loads(body) == too_large
    assert messaging_service.files.blobs.count() == blobs
    assert messaging_service.files.uploads_going() == 0
    assert list(messaging_service.files.blobs.uploads.iterdir()) == []
    assert (await download(http, ann, "raw", "big.bin")).status_code == 404


async def test_memory_stays_bounded_for_a_file_at_the_cap(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    """Bridge, service (and the embedded broker) run in this process: tracemalloc sees them
    all. A 10 MB file held even once would be a peak of 10 MB."""
    ann = await account(http)
    big = tmp_path / "cap.bin"
    with big.open("wb") as out:
        for _ in range(MAX_UPLOAD_DEFAULT // (1024 * 1024)):
            out.write(os.urandom(1024 * 1024))
    digest = hashlib.sha256()
    with big.open("rb") as source:
        while data := source.read(1024 * 1024):
            digest.update(data)
    form = Form(field("type", "raw"), file("cap.bin", b""))
    tracemalloc.start()
    try:
        reply = await http.post("/api/upload", content=form.stream(big),
                                headers={**ann.headers, **form.headers})
        _, upload_peak = tracemalloc.get_traced_memory()
        assert reply.json() == UPLOADED
        tracemalloc.reset_peak()
        received = hashlib.sha256()
        size = 0
        async with http.stream("GET", "/api/download", params={"type": "raw", "name": "cap.bin"},
                               headers=ann.headers) as streamed:
            assert streamed.status_code == 200
            async for data in streamed.aiter_bytes():
                received.update(data)
                size += len(data)
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (size, received.hexdigest()) == (MAX_UPLOAD_DEFAULT, digest.hexdigest())
    bound = 4 * 1024 * 1024  # measured: about 2 MB
    assert upload_peak < bound, f"upload peaked at {upload_peak} bytes"
    assert download_peak < bound, f"download peaked at {download_peak} bytes"


async def test_a_quota_full_is_a_413(backend: Backend, tmp_path: Path) -> None:
    async with (
        system(backend, tmp_path, quota=100_000) as running,
        httpx.AsyncClient(base_url=running.url, timeout=15) as http,
    ):
        ann = await account(http)
        assert (await upload(http, ann, "a", "one", b"1" * 60_000)).json() == UPLOADED
        over = await upload(http, ann, "a", "two", b"2" * 40_001)
        assert (over.status_code, over.json()) == (
            413, {"message": "file would exceed your storage quota"})
        assert (await upload(http, ann, "a", "two", b"2" * 40_000)).json() == UPLOADED
        bob = await account(http)  # a quota is per user
        assert (await upload(http, bob, "a", "one", b"3" * 100_000)).json() == UPLOADED


async def test_every_file_endpoint_wants_a_token(http: httpx.AsyncClient) -> None:
    form = Form(field("type", "profile"), file("me.jpg", JPEG))
    for reply in (
        await http.post("/api/upload", content=form.body, headers=form.headers),
        await http.get("/api/download", params={"type": "profile", "name": "me.jpg"}),
    ):
        assert (reply.status_code, reply.json()) == (401, NO_HEADER)
    bad = {"Authorization": "Bearer not.a.jwt"}
    reply = await http.post("/api/upload", content=form.body, headers={**bad, **form.headers})
    assert reply.status_code == 422 and set(reply.json()) == {"msg"}


async def test_has_file_tells_whether_a_user_has_one(
    http: httpx.AsyncClient, backend: Backend
) -> None:
    ann = await account(http)
    assert (await upload(http, ann, "profile", "me.jpg", JPEG)).json() == UPLOADED
    async with Bus(backend.bus("bridge"), role="bridge") as bus:
        request = Request({"type": "http", "method": "PUT", "path": "/api/user", "headers": [],
                           "query_string": b"", "state": {"bus": bus}})
        assert await has_file(request, ann.name, "profile", "me.jpg") is True
        for type_, name in (("profile", "other.jpg"), ("photos", "me.jpg"),
                            ("profile", "../me.jpg"), ("Profile", "me.jpg")):
            assert await has_file(request, ann.name, type_, name) is False
        assert await has_file(request, f"{ann.name}-x", "profile", "me.jpg") is False


async def test_a_client_gone_mid_upload_leaves_nothing_behind(
    http: httpx.AsyncClient, bridge_url: str, messaging_service: Messaging
) -> None:
    ann = await account(http)
    files = messaging_service.files
    form = Form(field("type", "raw"), file("half.bin", b""))
    end = b"\r\n--" + form.boundary.encode() + b"--\r\n"
    assert form.body.endswith(end)
    opening = form.body[:-len(end)]  # everything up to the file's bytes
    url = httpx.URL(bridge_url)
    assert url.port is not None
    _, writer = await asyncio.open_connection(url.host, url.port)
    try:
        headers = {**ann.headers, **form.headers, "Content-Length": "5000000"}
        writer.write(b"POST /api/upload HTTP/1.1\r\nHost: bridge\r\n"
                     + "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode()
                     + b"\r\n" + opening + os.urandom(600_000))
        await writer.drain()
        async with asyncio.timeout(5):
            while not files.uploads_going():  # the bridge has begun sending it on
                await asyncio.sleep(0.02)
    finally:
        writer.close()  # the client goes away with most of the file unsent
    async with asyncio.timeout(5):  # long before the service would drop it as idle (60 s)
        # The upload is forgotten, then its file removed in a thread: wait for both.
        while files.uploads_going() or any(files.blobs.uploads.iterdir()):
            await asyncio.sleep(0.05)
    assert (await download(http, ann, "raw", "half.bin")).status_code == 404
