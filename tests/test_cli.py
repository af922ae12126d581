"""``mirrorhub up`` as a newcomer runs it: one process, real ports, data under the data dir."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import httpx
import pytest

from broker.client import Bus
from broker.settings import BrokerURL, BusSettings
from schemas.auth import AUTH_LOGIN, LoginRequest
from tests.certs import make_pki
from tests.support import free_port, reachable, unique

MIRRORHUB = str(Path(sys.executable).parent / "mirrorhub")


def env_for(data: Path, broker_port: int, bridge_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(MIRRORHUB_DATA_DIR=str(data), MIRRORHUB_BROKER_PORT=str(broker_port),
               MIRRORHUB_BRIDGE_PORT=str(bridge_port), MIRRORHUB_ARGON2_MEMORY_KIB="1024")
    return env


async def wait_for_bridge(process: asyncio.subprocess.Process, port: int) -> None:
    """Until the bridge answers; a minute, as the whole system starts slowly on a loaded
    machine."""
    async with asyncio.timeout(60), httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        while True:
            try:
                await http.get("/whoami")
                return
            except httpx.TransportError:
                assert process.returncode is None, "mirrorhub up exited early"
                await asyncio.sleep(0.05)


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[tuple[Path, int, int]]:
    broker_port, bridge_port = free_port(), free_port()
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, "up", env=env_for(tmp_path, broker_port, bridge_port),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )
    try:
        await wait_for_bridge(process, bridge_port)
        yield tmp_path, broker_port, bridge_port
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
        assert process.returncode == 0, stderr.decode()[-2000:]
        assert b"Traceback" not in stderr, stderr.decode()[-2000:]


async def test_up_serves_http_and_mqtt_with_generated_credentials(
    system: tuple[Path, int, int],
) -> None:
    data, broker_port, bridge_port = system
    name = unique()
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{bridge_port}") as http:
        form = {"username": name, "password": "pw", "email": "cli@example.com"}
        assert (await http.post("/register/user", data=form)).json()["result"] == "success"
    assert (data / "auth.sqlite3").exists() and (data / "broker_accounts.json").exists()

    printed = await asyncio.create_subprocess_exec(
        MIRRORHUB, "credentials", env=env_for(data, broker_port, bridge_port),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await printed.communicate()
    accounts = dict(line.split(" ", 1) for line in out.decode().splitlines())
    operator = BrokerURL("127.0.0.1", broker_port, "operator", accounts["operator"])
    async with Bus(BusSettings(operator), role="operator") as bus:
        reply = await bus.request(AUTH_LOGIN, LoginRequest(username=name, password="pw"))
        assert reply.username == name


async def test_a_taken_port_is_reported_plainly(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await asyncio.create_subprocess_exec(
            MIRRORHUB, "up", env=env_for(tmp_path, port, free_port()),
            stderr=asyncio.subprocess.PIPE,
        )
        _, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2
    message = stderr.decode()
    assert f"127.0.0.1:{port} is already in use" in message
    assert "MIRRORHUB_BROKER_PORT" in message and "Traceback" not in message


async def run(env: dict[str, str], *args: str, cwd: Path | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        MIRRORHUB, *args, env=env, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE, cwd=cwd,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_mirror_on_its_own_account_sees_its_display(
    system: tuple[Path, int, int],
) -> None:
    data, broker_port, bridge_port = system
    env = env_for(data, broker_port, bridge_port)
    mirror = await asyncio.create_subprocess_exec(
        MIRRORHUB, "mirror", "--id", "hall", "--model-code", "MX-1", "--json", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    assert mirror.stdout is not None
    try:
        line = await asyncio.wait_for(mirror.stdout.readline(), 20)
        assert json.loads(line)["state"] == "idle", line  # messaging answered its "online"
    finally:
        mirror.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(mirror.communicate(), 15)
    assert mirror.returncode == 0, err.decode()[-2000:]
    code, out, _ = await run(env, "device", "list")
    assert (code, out) == (0, "hall\n")  # its account was made on first use


async def test_device_accounts_are_managed_by_command(tmp_path: Path) -> None:
    env = env_for(tmp_path, free_port(), free_port())
    code, out, _ = await run(env, "device", "add", "hall")
    mirror_id, password = out.split()
    assert (code, mirror_id) == (0, "hall") and len(password) >= 24
    assert (await run(env, "device", "add", "hall"))[1] == out  # the same account again
    refused = {
        "bridge": "is the name of a role account",
        "a/b": "one topic level",
        "+": "one topic level",
        " ": "must not start or end with whitespace",
        "hall\x01": "must not contain control characters",
        "m" * 300: "String should have at most 64 characters",
    }
    for bad, reason in refused.items():
        code, out, err = await run(env, "device", "add", bad)
        assert (code, out) == (2, ""), err
        last = err.splitlines()[-1]
        assert last.startswith("mirrorhub: mirror id") and reason in last, err
        assert "Traceback" not in err
    code, out, _ = await run(env, "device", "list")
    assert (code, out) == (0, "hall\n")  # none of them got an account
    said = f"mirrorhub: data dir {tmp_path}\n"  # on stderr, as every device command does
    assert await run(env, "device", "remove", "hall") == (0, "", said)  # no broker ever ran
    code, _, err = await run(env, "device", "remove", "hall")
    assert code == 2 and "has no account" in err


async def test_the_broker_listens_on_tls_and_websockets_when_told(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki")
    tls_port, ws_port, wss_port = free_port(), free_port(), free_port()
    env = env_for(tmp_path, free_port(), free_port())
    env.update(MIRRORHUB_BROKER_TLS_CERT=str(pki.server_cert),
               MIRRORHUB_BROKER_TLS_KEY=str(pki.server_key),
               MIRRORHUB_BROKER_TLS_PORT=str(tls_port), MIRRORHUB_BROKER_WS_PORT=str(ws_port),
               MIRRORHUB_BROKER_WSS_PORT=str(wss_port))
    process = await asyncio.create_subprocess_exec(MIRRORHUB, "broker", env=env,
                                                   stderr=asyncio.subprocess.PIPE)
    try:
        for _ in range(200):
            if all(reachable(("127.0.0.1", port)) for port in (tls_port, ws_port, wss_port)):
                break
            assert process.returncode is None, "mirrorhub broker exited early"
            await asyncio.sleep(0.05)
        password = json.loads((tmp_path / "broker_accounts.json").read_text())["operator"]
        tls = ssl.create_default_context(cafile=str(pki.ca))
        for connect in ({"port": tls_port, "tls_context": tls},
                        {"port": ws_port, "transport": "websockets"},
                        {"port": wss_port, "transport": "websockets", "tls_context": tls}):
            async with aiomqtt.Client("127.0.0.1", username="operator", password=password,
                                      timeout=5, **connect) as client:
                await client.subscribe("mirrors/hall/display")
                await client.publish("mirrors/hall/display", b"hi")
                async for message in client.messages:
                    assert message.payload == b"hi"
                    break
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = await asyncio.wait_for(process.communicate(), 15)
    assert process.returncode == 0, stderr.decode()[-2000:]


@pytest.mark.parametrize(("variables", "says"), [
    ({"MIRRORHUB_BROKER_TLS_PORT": "8883"}, "need MIRRORHUB_BROKER_TLS_CERT"),
    ({"MIRRORHUB_BROKER_TLS_CERT": "/nowhere/cert.pem"}, "go together"),
    ({"MIRRORHUB_BROKER_TLS_CERT": "/nowhere/cert.pem",
      "MIRRORHUB_BROKER_TLS_KEY": "/nowhere/key.pem"}, "cannot read the TLS certificate"),
])
async def test_a_bad_tls_setting_is_one_plain_line(tmp_path: Path, variables: dict[str, str],
                                                   says: str) -> None:
    env = env_for(tmp_path, free_port(), free_port())
    env.update(variables)
    code, _, err = await run(env, "broker")
    assert code == 2 and says in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize(
    "command",
    [("credentials",), ("device", "add", "hall"), ("device", "list"),
     ("mirror", "--id", "hall", "--model-code", "MX-1", "--count", "1")],
)
async def test_commands_name_their_data_dir_and_never_make_one(
    tmp_path: Path, command: tuple[str, ...]
) -> None:
    env = env_for(tmp_path / "elsewhere", free_port(), free_port())
    code, out, err = await run(env, *command)
    assert (code, out) == (2, ""), err
    assert err.startswith(f"mirrorhub: data dir {tmp_path / 'elsewhere'}\n"), err
    assert "start `mirrorhub up` first, or set MIRRORHUB_DATA_DIR" in err
    del env["MIRRORHUB_DATA_DIR"]  # the default, ./data, from where the command runs
    code, _, err = await run(env, *command, cwd=tmp_path)
    assert code == 2 and f"data dir {tmp_path / 'data'}" in err, err
    assert list(tmp_path.iterdir()) == []  # no data dir made, no secrets in it


async def test_credentials_of_a_data_dir_before_its_broker_ran(tmp_path: Path) -> None:
    code, _, err = await run(env_for(tmp_path, free_port(), free_port()), "credentials")
    assert code == 2 and f"{tmp_path / 'broker_accounts.json'} does not exist" in err, err
    assert list(tmp_path.iterdir()) == []
