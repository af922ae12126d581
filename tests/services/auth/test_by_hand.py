"""``mosquitto_pub``/``mosquitto_sub`` driving the auth service with the envelope, as a person
at a terminal would (README: "Talking MQTT by hand")."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from services.auth.accounts import Accounts
from tests.conftest import ACCOUNTS, Backend
from tests.support import unique

pytestmark = pytest.mark.skipif(
    not (shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")),
    reason="mosquitto_pub/mosquitto_sub not installed (Debian package mosquitto-clients)",
)


async def ask(backend: Backend, topic: str, body: dict[str, str]) -> dict[str, object]:
    """Publish one envelope with mosquitto_pub and read the reply with mosquitto_sub."""
    reply_to = f"reply/{unique('terminal')}"
    wire = backend.namespace  # "" on the embedded broker: the bare topics of the README
    login = ["-h", backend.broker_host, "-p", str(backend.broker_port),
             "-u", "test", "-P", ACCOUNTS["test"]]
    sub = await asyncio.create_subprocess_exec(
        "mosquitto_sub", *login, "-t", wire + reply_to, "-C", "1", "-W", "10",
        stdout=asyncio.subprocess.PIPE,
    )
    await asyncio.sleep(0.3)  # let mosquitto_sub subscribe first
    envelope = json.dumps({"id": "1", "reply_to": reply_to, "body": body})
    pub = await asyncio.create_subprocess_exec(
        "mosquitto_pub", *login, "-t", wire + topic, "-q", "1", "-m", envelope
    )
    assert await pub.wait() == 0
    out, _ = await sub.communicate()
    assert sub.returncode == 0, "mosquitto_sub got no reply"
    reply: dict[str, object] = json.loads(out)
    return reply


async def test_register_and_login_from_the_terminal(
    backend: Backend, auth_service: Accounts
) -> None:
    name = unique()
    registered = await ask(backend, "svc/auth/register",
                           {"username": name, "password": "pw", "email": "t@example.com"})
    assert registered == {"id": "1", "ok": True, "body": {"username": name}}
    login = await ask(backend, "svc/auth/login", {"username": name, "password": "pw"})
    assert login["ok"] is True
    assert isinstance(login["body"], dict) and login["body"]["token"]
    wrong = await ask(backend, "svc/auth/login", {"username": name, "password": "nope"})
    assert wrong["ok"] is False
    assert wrong["error"] == {"code": "login_failed",
                              "message": "Please check your username or password"}
