"""What the embedded broker checks when a client connects, before any session is touched: a
mirror's Last Will goes only to its own status topic, and a client id is its role's alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiomqtt
import pytest

from broker.server import EmbeddedBroker

ACCOUNTS = {"messaging": "messaging-secret", "operator": "operator-secret",
            "device": "device-secret"}
DEVICES = {"mirA": "mirA-secret", "mirB": "mirB-secret"}
STOLEN_INBOX = ('{"id":"s1","reply_to":"mirrors/mirA/inbox",'
                '"body":{"receiver_username":"ann","limit":200}}')
FORBIDDEN_WILLS = [
    ("svc/messaging/messages", STOLEN_INBOX),
    ("events/vision/recognized", '{"mirror_id":"mirA","username":"ann"}'),
    ("mirrors/mirB/display", '{"username":"forged"}'),
    ("mirrors/mirA/display", '{"username":"forged"}'),  # its own, but not its to say
]
# Connects with a Will (over TLS when given a CA file), says whether it could, then waits to be
# killed: no DISCONNECT, so the broker publishes the Will.
WILL_CLIENT = """
import asyncio, ssl, sys, aiomqtt
port, user, password, client_id, topic, payload, ca = sys.argv[1:]
async def main():
    will = aiomqtt.Will(topic, payload.encode(), qos=1, retain=True)
    tls = ssl.create_default_context(cafile=ca) if ca != "-" else None
    try:
        async with aiomqtt.Client("127.0.0.1", int(port), username=user, password=password,
                                  identifier=client_id, will=will, tls_context=tls):
            print("connected", flush=True)
            await asyncio.sleep(60)
    except aiomqtt.MqttCodeError as exc:
        print(f"refused: {exc}", flush=True)
asyncio.run(main())
"""


async def vanish_with_will(port: int, user: str, password: str, client_id: str, topic: str,
                           payload: str = "offline", ca: Path | None = None) -> str:
    """Connect a client with this Will in a process of its own and kill it; what it said."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", WILL_CLIENT, str(port), user, password, client_id, topic,
        payload, str(ca or "-"), stdout=asyncio.subprocess.PIPE)
    assert process.stdout is not None
    said = (await asyncio.wait_for(process.stdout.readline(), 10)).decode().strip()
    if process.returncode is None:
        process.kill()
    await process.wait()
    return said


@pytest.fixture
async def broker(tmp_path: Path) -> AsyncIterator[EmbeddedBroker]:
    devices = tmp_path / "device_accounts.json"
    devices.write_text(json.dumps(DEVICES))
    async with EmbeddedBroker(port=0, accounts=ACCOUNTS, devices_file=devices) as running:
        yield running


def client(broker: EmbeddedBroker, user: str | None, password: str | None, client_id: str,
           **options: object) -> aiomqtt.Client:
    return aiomqtt.Client("127.0.0.1", broker.port, username=user, password=password,
                          identifier=client_id, timeout=5, **options)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def watching(port: int, user: str = "operator", password: str = "operator-secret",
                   ) -> AsyncIterator[list[tuple[str, bytes]]]:
    """Everything published on the broker at ``port`` meanwhile, as ``user`` hears it."""
    heard: list[tuple[str, bytes]] = []
    async with aiomqtt.Client("127.0.0.1", port, username=user, password=password,
                              identifier="watcher", timeout=5) as watcher:
        await watcher.subscribe("#", qos=1)

        async def listen() -> None:
            async for message in watcher.messages:
                assert isinstance(message.payload, bytes)
                heard.append((message.topic.value, message.payload))

        task = asyncio.create_task(listen())
        try:
            yield heard
            await asyncio.sleep(0.3)  # whatever was on its way has arrived
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


async def refused(broker: EmbeddedBroker, user: str | None, password: str | None,
                  client_id: str, **options: object) -> None:
    with pytest.raises(aiomqtt.MqttCodeError, match=r"[Nn]ot authori[sz]ed"):
        async with client(broker, user, password, client_id, **options):
            pass


@pytest.mark.parametrize(("topic", "payload"), FORBIDDEN_WILLS)
async def test_a_mirrors_forbidden_will_is_refused_at_connect(
    broker: EmbeddedBroker, topic: str, payload: str,
) -> None:
    async with watching(broker.port) as heard:
        will = aiomqtt.Will(topic, payload, qos=1, retain=True)
        await refused(broker, "mirA", "mirA-secret", "mirA", will=will)
    assert heard == []
    # Nor was anything retained there for a later subscriber.
    async with client(broker, "operator", "operator-secret", "later") as later:
        await later.subscribe(topic, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.3):
                async for message in later.messages:
                    pytest.fail(f"retained on {topic}: {message.payload!r}")


async def test_the_shared_device_accounts_will_is_a_status_too(broker: EmbeddedBroker) -> None:
    await refused(broker, "device", "device-secret", "bench-1",
                  will=aiomqtt.Will("events/vision/recognized", b"{}", qos=1))
    async with client(broker, "device", "device-secret", "bench-1",
                      will=aiomqtt.Will("mirrors/mirB/status", b"offline", qos=1)):
        pass


async def test_a_mirrors_own_status_will_is_published_when_it_vanishes(
    broker: EmbeddedBroker,
) -> None:
    async with watching(broker.port) as heard:
        said = await vanish_with_will(broker.port, "mirA", "mirA-secret", "mirA",
                                      "mirrors/mirA/status")
        assert said == "connected"
        async with asyncio.timeout(10):
            while ("mirrors/mirA/status", b"offline") not in heard:
                await asyncio.sleep(0.05)


@pytest.mark.parametrize(("user", "password", "clean_session"), [
    (None, None, True),                  # nobody, with a clean session
    (None, None, False),                 # nobody, asking for the persistent session
    ("mirA", "mirA-secret", False),      # a mirror's account
    ("mirA", "mirA-secret", True),
    ("operator", "operator-secret", False),  # not messaging's either
    ("messaging", "wrong", False),       # messaging's name without its password
    ("messaging", "wrong", True),
])
async def test_nobody_else_takes_over_a_live_service_session(
    broker: EmbeddedBroker, user: str | None, password: str | None, clean_session: bool,
) -> None:
    async with client(broker, "messaging", "messaging-secret", "messaging-main",
                      clean_session=False) as service, \
            client(broker, "operator", "operator-secret", "sender") as sender:
        await service.subscribe("svc/messaging/send", qos=1)
        await refused(broker, user, password, "messaging-main", clean_session=clean_session)
        await sender.publish("svc/messaging/send", b"still there?", qos=1)
        async with asyncio.timeout(5):
            async for message in service.messages:
                assert message.payload == b"still there?"
                break


@pytest.mark.parametrize(("user", "client_id"), [
    ("mirA", "mirB"),                    # another mirror's
    ("mirA", "mirA-2"),                  # a mirror has exactly one
    ("mirA", "bridge-1"),
    ("operator", "mirA"),                # a mirror's is that mirror's alone
    ("operator", "staging-auth-1"),      # a role's, in a namespaced deployment
    ("device", "messaging-main"),
    ("messaging", "auth-1"),             # a service's are its own only
    ("messaging", "something"),
])
async def test_each_account_keeps_to_its_own_client_ids(broker: EmbeddedBroker, user: str,
                                                        client_id: str) -> None:
    password = DEVICES.get(user) or ACCOUNTS[user]
    await refused(broker, user, password, client_id)


@pytest.mark.parametrize(("user", "client_id"), [
    ("mirA", "mirA"), ("messaging", "messaging-main"), ("messaging", "test-1-messaging-main"),
    ("operator", "mosq-12345"), ("device", "hall"),
])
async def test_the_ids_an_account_may_use(broker: EmbeddedBroker, user: str,
                                          client_id: str) -> None:
    async with client(broker, user, DEVICES.get(user) or ACCOUNTS[user], client_id):
        pass


async def granted(session: aiomqtt.Client, topic_filter: str) -> bool:
    reply = await session.subscribe(topic_filter, qos=1)
    codes = [getattr(code, "value", code) for code in reply or ()]
    return codes == [1]


async def test_the_role_of_a_session_is_the_one_of_its_latest_connect(
    broker: EmbeddedBroker,
) -> None:
    # One persistent session, used in turn by the shared device account and the operator.
    for user, allowed in [("device", False), ("operator", True), ("device", False)]:
        async with client(broker, user, ACCOUNTS[user], "bench-7", clean_session=False) as one:
            assert await granted(one, "events/#") is allowed
            assert await granted(one, "mirrors/+/display")
