"""Prometheus metrics: scraped from the bridge's ``GET /metrics`` after real traffic (HTTP,
MQTT requests, a mirror's frames), parsed with prometheus-client's own text parser; the token
that restricts them; a process's own endpoint (``MIRRORHUB_METRICS_PORT``)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from broker.metrics import serve_metrics
from devices.frames import FrameFolder
from devices.mirror import Mirror
from schemas.auth import AUTH_LOGIN
from tests.bridge.stack import bridge_at
from tests.conftest import FACES, Backend, isolated, needs_photos
from tests.roles import auth_process
from tests.support import free_port, unique

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def parse(text: str) -> Samples:
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items()
               if sample == name and wanted <= have)


def series(samples: Samples, name: str) -> list[dict[str, str]]:
    return [dict(have) for (sample, have) in samples if sample == name]


async def scrape(http: httpx.AsyncClient, **headers: str) -> Samples:
    reply = await http.get("/metrics", headers=headers)
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"].startswith("text/plain")
    return parse(reply.text)


async def wait_for(check: Callable[[], bool], within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not check():
        assert loop.time() < deadline, "not within the time allowed"
        await asyncio.sleep(0.05)


@needs_photos
async def test_counters_move_with_traffic(http: httpx.AsyncClient, backend: Backend) -> None:
    before = await scrape(http)
    name = unique()
    await http.post("/register/user", data={"username": name, "password": "pw-123",
                                            "email": f"{name}@example.com"})
    ok = await http.post("/login", data={"username": name, "password": "pw-123"})
    wrong = await http.post("/login", data={"username": name, "password": "nope"})
    assert ok.json()["result"] == "success" and wrong.json()["result"] == "fail"
    await http.get("/no/such/path")
    assert (await http.delete("/login")).status_code == 405
    # A mirror comes online and sends frames; vision analyses them.
    frames = FrameFolder.open(FACES / "video" / "hamilton")
    async with Mirror(backend.bus("test"), unique("hall"), "1234-5678") as mirror:
        await mirror.stream_frames(frames, fps=20, loop=False, count=6)
        await wait_for(lambda: mirror.face_event is not None)
        during = await scrape(http)
    after = await scrape(http)

    def moved(name: str, by: float = 1, **labels: str) -> bool:
        return total(after, name, **labels) - total(before, name, **labels) >= by

    # The bridge's routing: by route template and status.
    assert moved("mirrorhub_http_requests_total", 2, endpoint="/login", status="200",
                 method="POST")
    assert moved("mirrorhub_http_requests_total", endpoint="unmatched", status="404")
    assert moved("mirrorhub_http_requests_total", endpoint="/login", status="405",
                 method="DELETE")  # a route's path with the wrong method counts as that route
    assert moved("mirrorhub_http_request_seconds_count", 2, endpoint="/login")
    # The caller's side of MQTT request/reply, by operation and outcome...
    login = AUTH_LOGIN.template
    assert moved("mirrorhub_bus_requests_total", operation=login, outcome="ok")
    assert moved("mirrorhub_bus_requests_total", operation=login, outcome="login_failed")
    assert moved("mirrorhub_bus_request_seconds_count", 2, operation=login)
    # ... and the service's.
    assert moved("mirrorhub_handled_total", service="auth", operation=login, outcome="ok")
    assert moved("mirrorhub_handled_total", service="auth", operation=login,
                 outcome="login_failed")
    assert moved("mirrorhub_handler_seconds_count", 2, service="auth", operation=login)
    # Frames, and the states read at scrape time.
    assert moved("mirrorhub_frames_analysed_total")
    assert total(during, "mirrorhub_mirrors_online") >= 1
    assert series(after, "mirrorhub_gallery_embeddings"), "each vision worker's gallery"
    queues = {labels["queue"] for labels in series(after, "mirrorhub_queue_depth")}
    assert {"bus", "frames"} <= queues
    # Labels are declared names, never the values a client sent.
    paths = {labels["endpoint"] for labels in series(after, "mirrorhub_http_requests_total")}
    assert "/no/such/path" not in paths


async def test_a_metrics_token_keeps_others_out(backend: Backend) -> None:
    async with bridge_at(isolated(backend), metrics_token="scrape-secret") as http:
        missing = await http.get("/metrics")
        wrong = await http.get("/metrics", headers={"Authorization": "Bearer guess"})
        basic = await http.get("/metrics", headers={"Authorization": "Basic c2NyYXBlLXNlY3JldA=="})
        for refused in (missing, wrong, basic):
            assert refused.status_code == 401
            assert refused.json()["result"] == "fail" and refused.json()["type"] == "metrics"
        samples = await scrape(http, Authorization="Bearer scrape-secret")
        assert series(samples, "mirrorhub_http_requests_total")


async def test_a_process_serves_its_own_metrics_port() -> None:
    with serve_metrics("127.0.0.1", 0) as port:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            samples = await scrape(http)
    assert ("mirrorhub_frames_dropped_total", frozenset()) in samples


async def test_a_service_run_apart_is_scraped_on_its_port(
    backend: Backend, tmp_path: Path
) -> None:
    """``mirrorhub service auth`` with MIRRORHUB_METRICS_PORT: its own requests show there."""
    port = free_port()
    async with (auth_process(isolated(backend), tmp_path, MIRRORHUB_METRICS_PORT=str(port)),
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http):
        samples = await scrape(http)
    # The login auth_process waits for was answered in that process, and counted there.
    assert total(samples, "mirrorhub_handled_total", service="auth",
                 operation=AUTH_LOGIN.template, outcome="login_failed") >= 1
