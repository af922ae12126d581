"""Every ``svc/*`` operation of every service, fuzzed over a real broker (issue 12).

The operations are the services' own declarations (:data:`mirrorhub.asyncapi.SERVICES`, the
listing docs/asyncapi.yaml is written from), served by the running auth, vision and messaging
services of the suite. The fuzzer publishes as the bridge account does (an authenticated client
allowed on ``svc/#``) what tests/services/fuzzing.py makes: malformed envelopes, wrong types,
missing fields, huge and deeply nested JSON, bytes that are not UTF-8, empty payloads, reply
topics that are not reply topics. Each message must get what docs/asyncapi.yaml promises: a
reply on its ``reply_to`` in the documented reply shape, with a typed error that is not
``internal``, or an ``events/{service}/rejected`` event when it names nobody to answer; and
after each operation's batch the service still answers a valid request.

Bounded: a fixed number of examples per operation, derandomized, no deadline. The ``slow`` run
sends many more.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, assume, find, given, settings
from pydantic import BaseModel, ValidationError

from broker.client import Bus, Message
from mirrorhub.asyncapi import SERVICES
from schemas import catalog
from schemas.auth import AuthError
from schemas.envelope import ErrorBody, ErrorCode, ReplyEnvelope
from schemas.messaging import MessagingError
from schemas.service import REJECTED, Rejected
from schemas.topics import Operation
from schemas.vision import VisionError
from services.auth.accounts import Accounts
from services.messaging.service import Messaging
from services.vision.faces import Faces
from tests.conftest import Backend
from tests.services.fuzzing import Case, body_of, cases, envelope_case, expired

KNOWN_CODES = {str(code) for code in (*ErrorCode, *AuthError, *VisionError, *MessagingError)}
OPERATIONS = [(service.name, handler.operation) for service in SERVICES
              for handler in service.handlers]
ANSWER_TIMEOUT = 5.0  # seconds; a fuzzed vision request may decode a picture first
DEFAULT_EXAMPLES, SLOW_EXAMPLES = 15, 200


class Fuzzer:
    """A real client on the broker that sends one case at a time and waits for its answer:
    every reply topic and every service's rejections are overheard, so that an answer sent
    anywhere it may go is seen."""

    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.reply_to = f"reply/fuzz-{uuid.uuid4().hex[:8]}"
        self.heard: asyncio.Queue[Message] = asyncio.Queue()
        self._ids = itertools.count()
        self._loop = asyncio.get_running_loop()

    async def start(self) -> None:
        async def collect(message: Message) -> None:
            await self.heard.put(message)

        await self.bus.subscribe_raw("reply/+", collect, qos=0)
        await self.bus.subscribe_raw(REJECTED.filter, collect, qos=0)
        await asyncio.sleep(0.2)  # let the subscriptions land before anything is sent

    def fresh_id(self) -> str:
        return f"fz{uuid.uuid4().hex[:6]}{next(self._ids)}"

    async def send(self, service: str, operation: Operation[Any, Any], payload: bytes,
                   answer: tuple[str, str] | None) -> None:
        """Publish ``payload`` and check its answer: a reply to ``answer`` (id, topic), or a
        rejection (None)."""
        while not self.heard.empty():  # what earlier cases' services said late is not ours
            self.heard.get_nowait()
        topic = operation.template
        await self.bus.publish_raw(topic, payload, qos=0)
        try:
            async with asyncio.timeout(ANSWER_TIMEOUT):
                await self._answer(service, operation, answer)
        except TimeoutError:
            raise AssertionError(f"{service} said nothing within {ANSWER_TIMEOUT:g} s "
                                 f"(promised: {answer}) to {payload!r}") from None

    async def _answer(self, service: str, operation: Operation[Any, Any],
                      answer: tuple[str, str] | None) -> None:
        topic = operation.template
        rejected_on = REJECTED.format(service=service)
        while True:
            message = await self.heard.get()
            if message.topic == rejected_on:
                event = Rejected.model_validate_json(message.payload)
                if event.topic != topic:
                    continue
                assert answer is None, (
                    f"rejected, but a reply to {answer} was promised: {event.error}")
                check_error(event.error)
                return
            if message.topic.startswith("events/"):
                continue
            reply = json.loads(message.payload)
            if not isinstance(reply, dict) or not self._ours(reply.get("id"), answer):
                continue
            assert answer is not None and message.topic == answer[1], (
                f"replied on {message.topic}, promised {answer}")
            check_reply(operation, reply)
            return

    @staticmethod
    def _ours(request_id: object, answer: tuple[str, str] | None) -> bool:
        """Whether a reply answers the case just sent: it echoes the promised id or, when a
        rejection was promised, an id of the fuzzer's."""
        if answer is not None:
            return request_id == answer[0]
        return isinstance(request_id, str) and request_id.startswith("fz")

    def run(self, coroutine: Any) -> None:
        """Run ``coroutine`` on the test's event loop from hypothesis's thread."""
        asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(ANSWER_TIMEOUT + 5)


def check_error(error: ErrorBody) -> None:
    assert error.code in KNOWN_CODES, f"undocumented error code {error.code}"
    assert error.code != ErrorCode.INTERNAL, f"the service failed: {error.message}"


def check_reply(operation: Operation[Any, Any], reply: dict[str, Any]) -> None:
    """The documented reply: ``{id, ok: true, body}`` with the operation's reply body, or
    ``{id, ok: false, error}`` with a typed error; the absent part left out."""
    envelope = ReplyEnvelope.model_validate(reply)
    if envelope.ok:
        assert set(reply) == {"id", "ok", "body"}, reply
        assert operation.reply is not None
        operation.reply.model_validate(envelope.body)
    else:
        assert set(reply) == {"id", "ok", "error"}, reply
        assert envelope.error is not None
        check_error(envelope.error)


def valid_body(model: type[BaseModel]) -> dict[str, Any]:
    """A body ``model`` accepts, found by hypothesis from the model's own shape."""
    schema = model.model_json_schema()

    def accepted(body: dict[str, Any]) -> bool:
        try:
            model.model_validate(body)
        except ValidationError:
            return False
        return True

    # The first one found, unshrunk: shrinking would take seconds for nothing.
    found: dict[str, Any] = find(body_of(schema, schema.get("$defs", {})), accepted,
                                 settings=settings(derandomize=True, database=None,
                                                   max_examples=2000,
                                                   phases=(Phase.generate,)))
    return found


@pytest.fixture(scope="module")
async def fuzzer(
    backend: Backend, auth_service: Accounts, vision_service: Faces, messaging_service: Messaging,
) -> AsyncIterator[Fuzzer]:
    async with Bus(backend.bus("bridge", request_timeout=ANSWER_TIMEOUT), role="bridge") as bus:
        fuzzer = Fuzzer(bus)
        await fuzzer.start()
        yield fuzzer


def fuzz(fuzzer: Fuzzer, service: str, operation: Operation[Any, Any], examples: int) -> None:
    """``examples`` hypothesis cases against ``operation``, in this (worker) thread."""
    assert operation.payload is not None

    # No shrinking: each step of it waits for an answer, so a failure would take minutes to
    # report; the failing case is printed as it was sent.
    @settings(max_examples=examples, derandomize=True, deadline=None, database=None,
              phases=(Phase.explicit, Phase.generate),
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(cases(operation.payload))
    def one(case: Case) -> None:
        request_id = fuzzer.fresh_id()
        payload = case.payload(request_id, fuzzer.reply_to)
        assume(not expired(payload))
        fuzzer.run(fuzzer.send(service, operation, payload,
                               case.answer(request_id, fuzzer.reply_to)))

    one()


async def still_answers(fuzzer: Fuzzer, service: str, operation: Operation[Any, Any]) -> None:
    assert operation.payload is not None
    body = await asyncio.to_thread(valid_body, operation.payload)
    request_id = fuzzer.fresh_id()
    case = envelope_case({"id": request_id, "reply_to": fuzzer.reply_to, "body": body})
    await fuzzer.send(service, operation, case.payload(request_id, fuzzer.reply_to),
                      (request_id, fuzzer.reply_to))


def operation_id(entry: tuple[str, Operation[Any, Any]]) -> str:
    return entry[1].template


@pytest.mark.parametrize("examples", [
    pytest.param(DEFAULT_EXAMPLES, id="bounded"),
    pytest.param(SLOW_EXAMPLES, id="many", marks=[pytest.mark.slow, pytest.mark.timeout(600)]),
])
@pytest.mark.parametrize("entry", OPERATIONS, ids=operation_id)
async def test_every_message_gets_a_typed_answer(
    fuzzer: Fuzzer, entry: tuple[str, Operation[Any, Any]], examples: int,
) -> None:
    service, operation = entry
    await asyncio.to_thread(fuzz, fuzzer, service, operation, examples)
    await still_answers(fuzzer, service, operation)


def test_every_declared_operation_is_fuzzed() -> None:
    """What the services serve, and so what is fuzzed, is every operation declared in
    ``schemas/``, each once."""
    fuzzed = sorted(operation.template for _, operation in OPERATIONS)
    assert fuzzed == sorted(operation.template for operation in catalog.OPERATIONS)
