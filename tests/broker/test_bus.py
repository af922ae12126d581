"""The Bus and the service runner on a real broker: request/reply, typed errors, bad input,
reconnects, Last Will. Runs on the embedded broker and, where it runs, on Mosquitto."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator

import pytest
from pydantic import BaseModel

from broker.client import Bus, Message
from broker.server import EmbeddedBroker
from broker.service import Handler, Service, bind, service_bus
from broker.settings import BrokerURL, BusSettings
from schemas.envelope import ErrorCode
from schemas.errors import BusUnavailable, RequestTimeout, ServiceError
from schemas.service import REJECTED, SERVICE_STATUS, Rejected, ServiceStatus
from schemas.topics import Operation
from tests.conftest import Backend
from tests.support import free_port, overhear


class Echo(BaseModel):
    text: str
    times: int = 1


class Echoed(BaseModel):
    text: str


SERVICE = f"test{uuid.uuid4().hex[:8]}"
ECHO = Operation(f"svc/{SERVICE}/echo", Echo, reply=Echoed)
FAIL = Operation(f"svc/{SERVICE}/fail", Echo, reply=Echoed)
CRASH = Operation(f"svc/{SERVICE}/crash", Echo, reply=Echoed)


async def echo(req: Echo) -> Echoed:
    return Echoed(text=req.text * req.times)


async def fail(req: Echo) -> Echoed:
    raise ServiceError("no_such_thing", f"nothing called {req.text}", "text")


async def crash(req: Echo) -> Echoed:
    raise RuntimeError("boom")


TEST = Service(SERVICE, handlers=(Handler(ECHO, echo), Handler(FAIL, fail), Handler(CRASH, crash)))


@pytest.fixture(scope="module")
async def service(backend: Backend) -> AsyncIterator[Bus]:
    bus = Bus(backend.bus("auth"), role="auth")
    async with TEST.serve(bus, max_payload=4096):
        yield bus


@pytest.fixture
async def client(backend: Backend, service: Bus) -> AsyncIterator[Bus]:
    async with Bus(backend.bus("bridge", request_timeout=3.0), role="bridge") as bus:
        yield bus


async def test_request_reply_like_a_function_call(client: Bus) -> None:
    assert await client.request(ECHO, Echo(text="ab", times=3)) == Echoed(text="ababab")


async def test_many_concurrent_requests_each_get_their_own_reply(client: Bus) -> None:
    replies = await asyncio.gather(*(client.request(ECHO, Echo(text=str(i))) for i in range(200)))
    assert [r.text for r in replies] == [str(i) for i in range(200)]


async def test_typed_errors_cross_the_wire(client: Bus) -> None:
    with pytest.raises(ServiceError) as caught:
        await client.request(FAIL, Echo(text="x"))
    assert (caught.value.code, caught.value.message, caught.value.field) == (
        "no_such_thing", "nothing called x", "text")
    with pytest.raises(ServiceError) as crashed:
        await client.request(CRASH, Echo(text="x"))
    assert crashed.value.code == ErrorCode.INTERNAL and "boom" not in crashed.value.message


async def test_invalid_body_names_the_field(client: Bus) -> None:
    with pytest.raises(ServiceError) as caught:
        await client.request_raw(ECHO, {"text": "a", "times": "many"})
    assert caught.value.code == ErrorCode.INVALID and caught.value.field == "times"
    with pytest.raises(ServiceError) as missing:
        await client.request_raw(ECHO, {})
    assert missing.value.field == "text"


async def test_oversized_payload_gets_too_large(client: Bus) -> None:
    with pytest.raises(ServiceError) as caught:
        await client.request_raw(ECHO, {"text": "x" * 10_000})
    assert caught.value.code == ErrorCode.TOO_LARGE
    assert await client.request(ECHO, Echo(text="ok")) == Echoed(text="ok")


async def test_garbage_is_rejected_as_an_event_and_the_service_lives_on(client: Bus) -> None:
    rejected: asyncio.Queue[Rejected] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await rejected.put(Rejected.model_validate_json(message.payload))

    await client.subscribe(REJECTED, collect, service=SERVICE)
    await asyncio.sleep(0.2)  # let the subscription land before publishing
    garbage = [b"\xff\xfe not json", b"[1, 2, 3]", b'{"id": "x"}', b"", b'{"reply_to": "#"}']
    for payload in garbage:
        await client.publish(ECHO, payload)
    codes = [(await asyncio.wait_for(rejected.get(), 5)).error.code for _ in garbage]
    assert set(codes) == {ErrorCode.BAD_REQUEST}
    # An envelope with a usable reply_to but a wrong shape gets a reply, not silence.
    with pytest.raises(ServiceError) as caught:
        await client.request_raw(ECHO, {"text": ["not", "a", "string"]})
    assert caught.value.code == ErrorCode.INVALID
    assert await client.request(ECHO, Echo(text="still here")) == Echoed(text="still here")


async def rejections(client: Bus) -> asyncio.Queue[Message]:
    """The test service's ``events/.../rejected``, subscribed and ready."""
    return await overhear(client, REJECTED.format(service=SERVICE))


async def test_replies_go_only_to_reply_topics(client: Bus) -> None:
    """A request naming a mirror's display (or any non-reply topic) as reply_to is rejected:
    the service never publishes there for whoever asked."""
    rejected = await rejections(client)
    elsewhere = ["mirrors/mirB/display", "svc/messaging/send", "reply", "reply/a/b",
                 "events/vision/recognized"]
    overheard = [await overhear(client, topic) for topic in elsewhere]
    for index, topic in enumerate(elsewhere):
        await client.publish(ECHO, {"id": f"r{index}", "reply_to": topic,
                                    "body": {"text": "forged"}})
    for _ in elsewhere:
        event = Rejected.model_validate_json((await asyncio.wait_for(rejected.get(), 5)).payload)
        assert event.error.code == ErrorCode.BAD_REQUEST and "reply_to" in event.error.message
    assert await client.request(ECHO, Echo(text="ok")) == Echoed(text="ok")
    assert all(heard.empty() for heard in overheard)


@pytest.mark.parametrize("level", [
    b"x\\u0001", b"x\\u007f", b"x\\u0085", b"\\ufdd0", b"\\uffff", b"\\ud83f\\udffe",  # U+1FFFE
    b"\\ud800", b"\\udfff x",  # lone surrogates: no UTF-8 at all
])
async def test_a_reply_topic_no_broker_takes_is_rejected(
    client: Bus, service: Bus, level: bytes,
) -> None:
    """A reply_to with a control character or a Unicode non-character in it (Mosquitto drops a
    client that publishes such a topic), or a lone surrogate, is refused: the service neither
    loses its connection nor its reply task, and answers the next request."""
    rejected = await rejections(client)
    connections = service.connections
    await client.publish(ECHO, b'{"id": "u", "reply_to": "reply/%b", "body": {"text": "a"}}'
                               % level)
    event = Rejected.model_validate_json((await asyncio.wait_for(rejected.get(), 5)).payload)
    assert event.error.code == ErrorCode.BAD_REQUEST
    assert await client.request(ECHO, Echo(text="ok")) == Echoed(text="ok")
    assert service.connections == connections


@pytest.mark.parametrize("deadline", [b"NaN", b"Infinity", b"-Infinity", b"1e400", b"true",
                                      b"false", b'"4102444800"', b"[]"])
async def test_a_deadline_must_be_a_finite_number(client: Bus, deadline: bytes) -> None:
    """Refused with an answer, never read as some time long past (``true`` as 1 s after 1970)
    and dropped unanswered."""
    own = f"reply/deadline-{uuid.uuid4().hex[:8]}"
    replies = await overhear(client, own)
    await client.publish(ECHO, b'{"id": "d", "reply_to": "%s", "body": {"text": "a"}, '
                               b'"deadline": %s}' % (own.encode(), deadline))
    reply = json.loads((await asyncio.wait_for(replies.get(), 5)).payload)
    assert reply["ok"] is False and reply["error"]["code"] == ErrorCode.BAD_REQUEST
    assert reply["error"]["field"] == "deadline"


async def test_json_nested_too_deeply_gets_an_answer(client: Bus) -> None:
    """Nesting deeper than any parser recurses (the probe sent 30,000 levels) is refused like
    any other bad payload: a rejection, or a reply when the start names id and reply_to."""
    rejected = await rejections(client)
    depth = 1900  # within the test service's 4 KiB limit, past Python's recursion limit
    await client.publish(ECHO, "[" * depth + "]" * depth)
    event = Rejected.model_validate_json((await asyncio.wait_for(rejected.get(), 5)).payload)
    assert event.error.code == ErrorCode.BAD_REQUEST
    with pytest.raises(ServiceError) as caught:
        await client.request_raw(ECHO, {"text": "a", "deep": json.loads("[" * 900 + "]" * 900)})
    assert caught.value.code in (ErrorCode.BAD_REQUEST, ErrorCode.INVALID)
    assert await client.request(ECHO, Echo(text="alive")) == Echoed(text="alive")


async def test_unanswered_request_times_out_within_the_deadline(client: Bus) -> None:
    nobody = Operation(f"svc/{SERVICE}-absent/echo", Echo, reply=Echoed)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(RequestTimeout):
        await client.request(nobody, Echo(text="x"), timeout=0.5)
    assert loop.time() - started < 1.5


def test_a_topic_registered_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        Service(SERVICE, handlers=(Handler(ECHO, echo), Handler(ECHO, fail)))


def test_a_service_answers_only_its_own_operations() -> None:
    with pytest.raises(ValueError, match=f"svc/{SERVICE}-other/"):
        Service(f"{SERVICE}-other", handlers=(Handler(ECHO, echo),))


async def test_reconnects_and_resubscribes_after_the_broker_restarts() -> None:
    port = free_port()
    accounts = {"a": "pw"}
    settings = BusSettings(BrokerURL("127.0.0.1", port, "a", "pw"), request_timeout=2.0,
                           connect_timeout=3.0)
    broker = EmbeddedBroker(port=port, accounts=accounts)
    restarted = EmbeddedBroker(port=port, accounts=accounts)
    await broker.__aenter__()
    server = Bus(settings, role="svc")
    async with (
        TEST.serve(server),
        Bus(settings, role="client") as client,
    ):
        assert (await client.request(ECHO, Echo(text="before"))).text == "before"
        await broker.__aexit__(None, None, None)
        with pytest.raises((BusUnavailable, RequestTimeout)):
            await client.request(ECHO, Echo(text="down"), timeout=0.5)
        await restarted.__aenter__()
        async with asyncio.timeout(10):
            while not (client.connected and server.connected):
                await asyncio.sleep(0.05)
        reply = await client.request(ECHO, Echo(text="after"), timeout=3)
        assert reply.text == "after"
        assert client.connections == 2 and server.connections == 2
    # Clients leave first: amqtt 0.12's shutdown can wait forever on a connected client.
    await restarted.__aexit__(None, None, None)

WILL_CLIENT = """
import asyncio, sys
from broker.client import Bus
from broker.protocol import Will
from broker.settings import BrokerURL, BusSettings
host, port, user, password, topic = sys.argv[1:]
async def main():
    settings = BusSettings(BrokerURL(host, int(port), user, password))
    async with Bus(settings, will=Will(topic, '{"state": "offline"}', qos=1)):
        print("connected", flush=True)
        await asyncio.sleep(60)
asyncio.run(main())
"""


async def test_last_will_is_published_when_a_process_dies(backend: Backend) -> None:
    topic = f"events/{SERVICE}/will"
    got: asyncio.Queue[bytes] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await got.put(message.payload)

    async with Bus(backend.bus("bridge"), role="bridge") as watcher:
        await watcher.subscribe_raw(topic, collect)
        await asyncio.sleep(0.2)
        url = backend.bus("test").url  # an account whose client ids are not a role's
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-c", WILL_CLIENT, url.host, str(url.port), str(url.username),
            str(url.password), backend.namespace + topic, stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        assert await asyncio.wait_for(process.stdout.readline(), 10) == b"connected\n"
        process.kill()  # no DISCONNECT: the broker must publish the will
        await process.wait()
        payload = await asyncio.wait_for(got.get(), 10)
        assert json.loads(payload) == {"state": "offline"}


async def test_service_status_online_then_offline_on_clean_close(backend: Backend) -> None:
    statuses: asyncio.Queue[ServiceStatus] = asyncio.Queue()

    async def collect(message: Message) -> None:
        await statuses.put(ServiceStatus.model_validate_json(message.payload))

    name = f"{SERVICE}-status"
    async with Bus(backend.bus("bridge"), role="bridge") as watcher:
        await watcher.subscribe(SERVICE_STATUS, collect, service=name)
        await asyncio.sleep(0.2)
        async with service_bus(backend.bus("test"), name) as bus:
            online = await asyncio.wait_for(statuses.get(), 5)
            assert (online.client_id, online.state) == (bus.client_id, "online")
        offline = await asyncio.wait_for(statuses.get(), 5)
        assert (offline.client_id, offline.state) == (bus.client_id, "offline")


class Looping:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.stopped = asyncio.Event()

    async def run(self) -> None:
        try:
            await asyncio.sleep(0.05)
            if self.fail:
                raise RuntimeError("the loop broke")
            await asyncio.Event().wait()
        finally:
            self.stopped.set()


LOOPING = Service(f"{SERVICE}-loop", tasks=(Looping.run,))


async def test_an_error_in_a_served_block_comes_out_as_itself(backend: Backend) -> None:
    part = Looping(fail=False)
    with pytest.raises(ValueError, match="the caller's"):
        async with LOOPING.serve(Bus(backend.bus("auth"), role="auth"), part):
            await asyncio.sleep(0.01)  # the task has started
            raise ValueError("the caller's")
    assert part.stopped.is_set()  # the service's tasks stopped with it


async def test_a_task_that_dies_takes_its_service_down_with_its_error(backend: Backend) -> None:
    part = Looping(fail=True)
    with pytest.raises(ExceptionGroup) as caught:
        async with LOOPING.serve(Bus(backend.bus("auth"), role="auth"), part):
            await asyncio.sleep(5)
    assert caught.group_contains(RuntimeError, match="the loop broke")


def test_a_method_no_part_has_is_found_at_start_up() -> None:
    with pytest.raises(ValueError, match="exactly one part"):
        bind(Looping.run, (object(),))
