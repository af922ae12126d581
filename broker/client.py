"""The asyncio MQTT client every mirrorhub process uses: :class:`Bus`.

A Bus owns one MQTT connection (:mod:`broker.connection`: paho-mqtt driven by the asyncio loop)
and keeps it: when the broker goes away it reconnects with backoff, on the same paho client, and
subscribes again to everything registered with :meth:`Bus.subscribe`. A QoS 1 publish waits for
its PUBACK across reconnections (paho sends what was in flight again), up to a timeout; with a
persistent session nothing handed to the broker is lost by a dropped connection. The broker is
reached over TCP, TLS, WebSockets or WebSockets over TLS, with MQTT 3.1.1 or 5
(:mod:`broker.settings`). Requests look like function calls::

    async with Bus(settings, role="bridge") as bus:
        reply = await bus.request(AUTH_LOGIN, LoginRequest(username="ann", password="..."))
        await bus.publish(MIRROR_DISPLAY, display, mirror_id="hall", retain=True)
        await bus.subscribe(MIRROR_STATUS, on_status)  # on_status(message): message.params

Topics travel as the declared :class:`~schemas.topics.Topic` values of ``schemas/`` with their
parameters, never as formatted strings; a callback gets the parameters back in
:attr:`Message.params`. The ``*_raw`` variants take topic strings, for tools and tests that
speak to topics nobody declared (probes, access tests).

Replies come back on the Bus's own ``reply/{client_id}`` topic (``schemas.envelope.REPLY``)
and are matched by request id (:mod:`broker.calls`).

With ``BusSettings.namespace`` set (e.g. ``staging/``), every topic on the wire gets that prefix
and loses it again on receipt: callers, envelopes and callbacks only ever see topics without it,
so several deployments (or test runs) can share one broker without hearing each other.

Requests and replies travel at QoS 0: the caller's deadline is what makes a call reliable (a lost
message is a :class:`~schemas.errors.RequestTimeout`, never silence), and QoS 1 would both double
the packets and let a redelivered request run twice (registering a user twice, say). The
exception is an operation whose service holds a persistent session and deduplicates (sending a
message): ``qos=1`` lets the broker keep the request while that service restarts. Every request
carries a ``deadline``; a service drops what arrives after it, so a caller that gave up can say
"not done" and be right. With MQTT 5 the broker drops it too: a request's message expiry
interval is its deadline, so a QoS 1 request kept for an absent service does not outlive it.
A request fails with :class:`~schemas.errors.BusUnavailable` when there is no connection (or it
drops while waiting), :class:`~schemas.errors.RequestTimeout` after the deadline, and
:class:`~schemas.errors.ServiceError` when the service answered with a typed error.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any, Self, TypeVar, cast

from paho.mqtt.client import MQTTMessage
from pydantic import BaseModel

from broker.calls import Calls, reply_body
from broker.connection import Connection
from broker.metrics import QUEUE_DEPTH, counted_call
from broker.protocol import (
    ConnectRefused,
    MqttError,
    SubscriptionRefused,
    TlsRefused,
    Will,
)
from broker.settings import BusSettings
from broker.subscriptions import Message as Message
from broker.subscriptions import MessageCallback as MessageCallback
from broker.subscriptions import Subscription, Subscriptions
from broker.tracing import REQUEST_ID
from schemas.envelope import REPLY
from schemas.errors import AccessDenied, BusUnavailable, RequestTimeout
from schemas.topics import Operation, Topic

log = logging.getLogger(__name__)

Rep = TypeVar("Rep", bound=BaseModel)
Payload = BaseModel | dict[str, Any] | bytes | str


_BACKOFF_MIN, _BACKOFF_MAX = 0.05, 5.0
_CLOSE_TIMEOUT = 2.0
_PUBLISH_TIMEOUT = 10.0  # longest wait for the broker to acknowledge a QoS 1 publish
_REPLY_MARGIN = 1.0  # seconds of a request's deadline kept for the reply's way back


def encode(payload: Payload) -> bytes:
    """Wire bytes for a model, a JSON-able dict, text or raw bytes."""
    if isinstance(payload, BaseModel):
        return payload.model_dump_json().encode()
    if isinstance(payload, dict):
        return json.dumps(payload, separators=(",", ":"), default=str).encode()
    if isinstance(payload, str):
        return payload.encode()
    return bytes(payload)


class Bus:
    """A self-healing MQTT connection with publish, subscribe and request/reply.

    ``will`` is the Last Will the broker publishes if this process vanishes; ``on_connect``
    callbacks run after every (re)connection, once subscriptions are back in place.
    """

    def __init__(
        self,
        settings: BusSettings,
        *,
        role: str = "client",
        client_id: str | None = None,
        will: Will | None = None,
        clean_session: bool = True,
        concurrency: int = 64,
    ) -> None:
        self.settings = settings
        self.client_id = client_id or f"{role}-{uuid.uuid4().hex[:12]}"
        self.namespace = settings.namespace
        self.reply_topic = REPLY.format(client_id=self.client_id)
        self._reply_wire = self._wire(self.reply_topic)
        self._calls = Calls(self.client_id, self.reply_topic)
        # The Last Will's topic is namespaced like every other topic.
        self._will = (
            Will(self.namespace + will.topic, will.payload, will.qos, will.retain)
            if will is not None else None
        )
        self._clean_session = clean_session
        self._concurrency = concurrency
        self._subs = Subscriptions()
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._on_close: list[Callable[[], Awaitable[None]]] = []
        self._connection: Connection | None = None  # made on entering, for the Bus's life
        self._client: Connection | None = None  # the same while connected, else None
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._refused: str | None = None  # why the broker turned us away for good
        self._last_error: str | None = None  # why the last attempt to connect failed
        self.connections = 0  # how many times a connection was made; tests watch reconnects
        self._sampled = contextlib.ExitStack()  # the queue depth in metrics, while open

    # -- lifecycle -----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        self._sampled.enter_context(
            QUEUE_DEPTH.sampling(lambda: len(self._tasks), "bus", self.client_id))
        connection = Connection(self.settings, self.client_id, will=self._will,
                                clean_session=self._clean_session, on_message=self._dispatch)
        self._connection = connection
        runner = asyncio.create_task(self._run(connection), name=f"bus:{self.client_id}")
        self._runner = runner
        connected = asyncio.create_task(self._connected.wait())
        try:
            await asyncio.wait({runner, connected}, timeout=self.settings.connect_timeout,
                               return_when=asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled (SIGTERM while starting): stop trying, as on failure
            connected.cancel()
            await self.__aexit__(None, None, None)
            raise
        connected.cancel()
        if self._connected.is_set():
            return self
        await self.__aexit__(None, None, None)
        last = f": {self._last_error}" if self._last_error else ""
        if not last and self.settings.mqtt5:
            last = (": no answer to an MQTT 5 CONNECT (a broker that speaks only 3.1.1, as "
                    "amqtt, wants MIRRORHUB_BROKER_MQTT5 unset)")
        raise BusUnavailable(
            self._refused
            or f"cannot connect to the MQTT broker at {self.settings.url} "
               f"within {self.settings.connect_timeout:g} s{last}"
        )

    async def __aexit__(self, *exc_info: object) -> None:
        if self.connected:
            for callback in self._on_close:
                try:
                    async with asyncio.timeout(_CLOSE_TIMEOUT):
                        await callback()
                except (TimeoutError, BusUnavailable):
                    log.warning("%s: a goodbye message was not sent", self.client_id)
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.cancel()  # says DISCONNECT and closes: no waiting on the broker
            await asyncio.gather(runner, return_exceptions=True)
        if self._connection is not None:
            self._connection.fail_publishes(MqttError("the Bus was closed"))
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._sampled.close()

    def on_close(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` before a clean disconnect, e.g. to publish an ``offline`` status
        (the Last Will only covers the unclean ones)."""
        self._on_close.append(callback)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run ``callback`` after every (re)connection, e.g. to publish an ``online`` status."""
        self._on_connect.append(callback)

    async def _run(self, connection: Connection) -> None:
        """Connect, subscribe, run the :meth:`on_connect` callbacks, wait for the connection to
        end; again, with a backoff, until the Bus closes."""
        backoff = _BACKOFF_MIN
        url = self.settings.url
        while True:
            try:
                await connection.connect()
                await connection.subscribe(self._reply_wire, 0)
                for sub in self._subs:
                    try:
                        await connection.subscribe(sub.filter, sub.qos)
                    except SubscriptionRefused as exc:  # retrying would not change the answer
                        log.error("%s: %s", self.client_id, exc)
                self._client = connection
                self.connections += 1
                self._connected.set()
                backoff = _BACKOFF_MIN
                log.info("%s connected to %s", self.client_id, url)
                await _unless_lost(self._connected_callbacks(), connection.lost)
                await connection.lost
                log.warning("%s lost the broker at %s", self.client_id, url)
            except (ConnectRefused, TlsRefused) as exc:
                final = isinstance(exc, TlsRefused) or exc.final
                if final and self.connections == 0:
                    # Wrong credentials or certificates will not get better by retrying.
                    refused = "credentials" if getattr(exc, "credentials", False) else "connection"
                    self._refused = (str(exc) if isinstance(exc, TlsRefused) else
                                     f"the MQTT broker at {url} refused the {refused}: {exc}")
                    return
                log.warning("%s: broker at %s refused the connection: %s", self.client_id, url,
                            exc)
            except (MqttError, OSError, TimeoutError, BusUnavailable) as exc:
                self._last_error = str(exc) or type(exc).__name__
                if self._client is not None:
                    log.warning("%s lost the broker at %s: %s", self.client_id, url, exc)
                else:
                    log.debug("%s cannot reach %s: %s", self.client_id, url, exc)
            finally:
                connection.close()  # on cancellation too: DISCONNECT, so no Last Will
                self._client = None
                self._connected.clear()
                self._calls.fail_all()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, _BACKOFF_MAX)

    async def _connected_callbacks(self) -> None:
        for callback in self._on_connect:
            await callback()

    # -- receiving -----------------------------------------------------------------------------

    def _wire(self, topic: str) -> str:
        return self.namespace + topic

    async def subscribe(
        self, topic: Topic[Any], callback: MessageCallback, qos: int = 1, *,
        shared: bool = False, **params: str,
    ) -> None:
        """Deliver every message on ``topic`` to ``callback``, across reconnects: the
        placeholders given in ``params`` are fixed, the others match any value and reach the
        callback in :attr:`Message.params`. See :meth:`subscribe_raw` for the rest."""
        await self._subscribe(topic.filter_for(**params), callback, qos, shared, topic)

    async def subscribe_raw(
        self, topic_filter: str, callback: MessageCallback, qos: int = 1, *, shared: bool = False
    ) -> None:
        """Deliver every message matching ``topic_filter`` to ``callback``, across reconnects.

        ``shared`` subscribes through ``$share/<group>/`` when the settings name a group, so
        that several instances of a service split the messages. While ``concurrency``
        callbacks run, the Bus stops reading from the broker, which pushes back on it instead
        of queueing without bound. :class:`~schemas.errors.AccessDenied` when the broker will
        not let this account read ``topic_filter``.
        """
        await self._subscribe(topic_filter, callback, qos, shared, None)

    async def _subscribe(self, topic_filter: str, callback: MessageCallback, qos: int,
                         shared: bool, topic: Topic[Any] | None) -> None:
        topic_filter = self._wire(topic_filter)
        if shared and self.settings.shared_group:
            topic_filter = f"$share/{self.settings.shared_group}/{topic_filter}"
        sub = Subscription(topic_filter, callback, qos, topic)
        self._subs.add(sub)
        client = self._client
        if client is not None:
            try:
                await client.subscribe(topic_filter, qos)
            except SubscriptionRefused as exc:
                self._subs.remove(sub)
                raise AccessDenied(str(exc)) from exc
            except MqttError:
                log.warning("subscribe to %s deferred to the next connection", topic_filter)

    def _dispatch(self, received: MQTTMessage) -> None:
        """Called by the connection for each message, in the loop: replies resolve their call
        at once; other messages start one task per matching subscription."""
        topic, payload = received.topic, cast(bytes, received.payload)  # bytes, from paho
        if topic == self._reply_wire:
            self._calls.resolve(payload)
            return
        local = topic.removeprefix(self.namespace)
        for sub, params in self._subs.routes(topic, local):
            message = Message(local, payload, received.retain, dict(params))
            task = asyncio.create_task(self._deliver(sub, message))
            self._tasks.add(task)
            task.add_done_callback(self._delivered)
        if len(self._tasks) >= self._concurrency and self._connection is not None:
            # Push back on the broker rather than queue without bound.
            self._connection.pause_reading()

    def _delivered(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if len(self._tasks) < self._concurrency and self._connection is not None:
            self._connection.resume_reading()

    async def _deliver(self, sub: Subscription, message: Message) -> None:
        try:
            await sub.callback(message)
        except Exception:
            log.exception("callback for %s failed on %s", sub.filter, message.topic)

    # -- sending -------------------------------------------------------------------------------

    async def publish(
        self,
        topic: Topic[Any],
        payload: Payload,
        *,
        qos: int = 1,
        retain: bool = False,
        wait: float = 0.0,
        **params: str,
    ) -> None:
        """Publish ``payload`` on ``topic`` filled in with ``params``; with ``wait`` > 0, first
        wait that long for a lost connection to return."""
        await self.publish_raw(topic.format(**params), payload, qos=qos, retain=retain,
                               wait=wait)

    async def publish_raw(
        self,
        topic: str,
        payload: Payload,
        *,
        qos: int = 1,
        retain: bool = False,
        wait: float = 0.0,
    ) -> None:
        """Like :meth:`publish`, on a topic string.

        At QoS 1, returns once the broker has acknowledged the message, which may be on the next
        connection if this one drops: :class:`~schemas.errors.BusUnavailable` only when there is
        no connection to start with, or no acknowledgement within 10 s.
        """
        await self._publish(topic, encode(payload), qos, retain, wait)

    async def _publish(self, topic: str, data: bytes, qos: int, retain: bool, wait: float,
                       expiry: int | None = None) -> None:
        if not self._connected.is_set() and wait > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._connected.wait()
        client = self._client
        if client is None:
            raise BusUnavailable(f"not connected to the MQTT broker at {self.settings.url}")
        try:
            acked = client.publish(self._wire(topic), data, qos, retain, expiry)
            if acked is None:
                return
            try:
                async with asyncio.timeout(_PUBLISH_TIMEOUT):
                    await acked
            finally:
                if acked.cancelled():
                    client.forget(acked)
        except TimeoutError as exc:
            raise BusUnavailable(f"publish to {topic} was not acknowledged within "
                                 f"{_PUBLISH_TIMEOUT:g} s") from exc
        except MqttError as exc:
            raise BusUnavailable(f"publish to {topic} failed: {exc}") from exc

    async def request(
        self,
        operation: Operation[Any, Rep],
        body: BaseModel | dict[str, Any],
        *,
        timeout: float | None = None,
        qos: int = 0,
        **params: str,
    ) -> Rep:
        """Send ``body`` to ``operation`` and return its validated reply body.

        ``qos=1`` is for requests a service must not miss during a short absence: the broker
        keeps them for a persistent session until it is back, or until the deadline passes.
        """
        # The body's JSON straight from the model (once), not through a dict and json.dumps.
        data = body.model_dump_json().encode() if isinstance(body, BaseModel) else encode(body)
        reply = await self._call(operation, data, timeout, qos, params)
        assert operation.reply is not None
        return operation.reply.model_validate(reply)

    async def request_raw(
        self,
        operation: Operation[Any, Any],
        body: dict[str, Any],
        *,
        timeout: float | None = None,
        qos: int = 0,
        **params: str,
    ) -> dict[str, Any]:
        """Like :meth:`request` with an unchecked body: the reply body as a dict."""
        return await self._call(operation, encode(body), timeout, qos, params)

    async def _call(self, operation: Operation[Any, Any], body: bytes, timeout: float | None,
                    qos: int, params: dict[str, str]) -> dict[str, Any]:
        """Send the JSON ``body`` in a request envelope and wait for the reply's body."""
        topic = operation.format(**params)
        deadline = timeout if timeout is not None else self.settings.request_timeout
        # The service must start before this, so that its reply can still arrive in time.
        expires = time.time() + deadline - min(deadline / 4, _REPLY_MARGIN)
        request_id, future, envelope = self._calls.start(body, expires, REQUEST_ID.get())
        expiry = max(1, math.ceil(expires - time.time()))  # MQTT 5: the broker drops it then
        with counted_call(operation.template):
            try:
                async with asyncio.timeout(deadline):
                    # A dropped connection may come back quickly; wait part of the deadline.
                    await self._publish(topic, envelope, qos, False,
                                        min(deadline / 2, 2.0), expiry)
                    reply = await future
            except TimeoutError as exc:
                raise RequestTimeout(topic, deadline) from exc
            finally:
                self._calls.end(request_id)
            return reply_body(topic, reply)


async def _unless_lost(work: Awaitable[None], lost: asyncio.Future[None]) -> None:
    """Run ``work`` (the on-connect callbacks), stopped if the connection is lost first: a
    callback waiting on a PUBACK would otherwise hold the reconnection up until its timeout,
    and the next connection runs every callback again. Its errors are the connection's."""
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, lost}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if not task.cancelled():
        task.result()
