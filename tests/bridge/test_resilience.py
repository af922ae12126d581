"""The bridge when services or the broker are missing: bounded 503/504, recovery without restart."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from bridge.app import create_app
from bridge.server import serving
from broker.server import EmbeddedBroker
from broker.settings import BrokerURL, BusSettings
from services.auth.service import run_auth
from tests.conftest import Backend, auth_settings, create_database, drop_database, isolated
from tests.support import free_port, unique


async def test_auth_restart_mid_run_the_bridge_recovers(backend: Backend, tmp_path: Path) -> None:
    backend = isolated(backend)
    database = await create_database(backend, "restart")
    settings = auth_settings(tmp_path, database, None)
    port = free_port()
    app = create_app(backend.bus("bridge", request_timeout=1.0))
    name = unique()
    try:
        async with serving(app, "127.0.0.1", port), httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=10
        ) as http:
            async with run_auth(backend.bus("auth"), settings):
                form = {"username": name, "password": "pw", "email": "r@example.com"}
                assert (await http.post("/register/user", data=form)).json()["result"] == "success"

            started = asyncio.get_running_loop().time()
            down = await http.post("/login", data={"username": name, "password": "pw"})
            assert down.status_code == 504
            assert down.json()["result"] == "fail" and down.json()["type"] == "login"
            assert asyncio.get_running_loop().time() - started < 3

            async with run_auth(backend.bus("auth"), settings):
                back = await http.post("/login", data={"username": name, "password": "pw"})
                assert back.status_code == 200 and back.json()["result"] == "success"
    finally:
        await drop_database(database)


async def test_broker_gone_is_a_503_and_the_bridge_reconnects() -> None:
    broker_port, http_port = free_port(), free_port()
    accounts = {"bridge": "pw"}
    settings = BusSettings(BrokerURL("127.0.0.1", broker_port, "bridge", "pw"),
                           request_timeout=1.0, connect_timeout=3.0)
    broker = EmbeddedBroker(port=broker_port, accounts=accounts)
    restarted = EmbeddedBroker(port=broker_port, accounts=accounts)
    await broker.__aenter__()
    async with serving(create_app(settings), "127.0.0.1", http_port), httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{http_port}", timeout=10
    ) as http:
        await broker.__aexit__(None, None, None)
        await asyncio.sleep(0.2)
        gone = await http.post("/login", data={"username": "a", "password": "b"})
        assert gone.status_code == 503 and gone.json()["type"] == "login"
        await restarted.__aenter__()
        # broker back, no auth service: the bridge is connected again and times out cleanly
        for _ in range(100):
            reply = await http.post("/login", data={"username": "a", "password": "b"})
            if reply.status_code == 504:
                break
            await asyncio.sleep(0.1)
        assert reply.status_code == 504
    await restarted.__aexit__(None, None, None)  # after the bridge has disconnected
