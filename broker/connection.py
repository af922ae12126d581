"""One MQTT connection for :class:`broker.client.Bus`: a paho-mqtt 2.x client driven by the
running asyncio loop, through paho's public socket API.

paho encodes, decodes and keeps the session (QoS 1 in flight, keep-alive); this module only moves
its bytes. ``on_socket_open``/``on_socket_close`` add and remove a reader that calls
``loop_read``, ``on_socket_register_write`` writes at once with ``loop_write`` (a writer is added
only while the socket is full), and a timer calls ``loop_misc`` every second (keep-alive pings,
and dropping a broker that stopped answering them). A TLS socket may hold decrypted bytes that
``select`` cannot see: reads go on while it has ``pending()`` ones.

paho's ``connect``/``reconnect`` block (TCP, TLS and WebSocket handshakes), so they run in a
worker thread; paho then calls ``on_socket_open`` from that thread, and the loop takes over with
``call_soon_threadsafe``. Nothing else runs off the loop: no thread per message.

The same paho client serves every reconnection (``reconnect()``), so its unacknowledged QoS 1
publishes are sent again on the next connection: :meth:`Connection.publish`'s future resolves on
the PUBACK, whichever connection brings it.

Small packets go out at once (``TCP_NODELAY``), and every read re-arms ``TCP_QUICKACK`` where the
OS has it: a broker that leaves Nagle on (Mosquitto does by default) would otherwise hold its
next small packet until our delayed ACK, about 40 ms later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import traceback
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker.protocol import (
    ConnectRefused,
    MqttError,
    SubscriptionRefused,
    TlsRefused,
    Will,
)
from broker.settings import BusSettings
from broker.tls import TlsWatch

log = logging.getLogger(__name__)

_MISC_INTERVAL = 1.0  # seconds between loop_misc calls: keep-alive has a resolution of 1 s
# QoS 1 publishes on the wire at once, and waiting behind them: paho's defaults (20, and no
# bound) would stall a burst on round trips and let a long outage grow memory without end.
MAX_INFLIGHT = 1000
MAX_QUEUED = 100_000
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_READ_BURST = 64  # messages read in one wake-up at most, so that other callbacks get their turn
def close_leaked_sockets(exc: BaseException) -> None:
    """Close the sockets that a failed ``connect`` left open in its frames.

    paho closes no socket when a TLS or WebSocket handshake fails after TCP connected: it would
    die unclosed with the traceback, whenever that is collected (a ResourceWarning).
    """
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        for value in frame.f_locals.values():
            if isinstance(value, socket.socket) and value.fileno() >= 0:
                value.close()


class Connection:
    """One paho client, reconnected as often as asked, driven by the running loop.

    ``on_message`` is called in the loop for every PUBLISH received (paho acknowledges a QoS 1
    one when it returns). :meth:`connect` makes a connection and waits for CONNACK;
    :attr:`lost` resolves when that connection ends; :meth:`close` says DISCONNECT.
    """

    def __init__(self, settings: BusSettings, client_id: str, *, will: Will | None,
                 clean_session: bool, on_message: Callable[[mqtt.MQTTMessage], None]) -> None:
        self.settings = settings
        url = settings.url
        self.mqtt5 = settings.mqtt5
        self._loop = asyncio.get_running_loop()
        # While paho's blocking connect runs in a worker thread, its socket callbacks may come
        # from there and must hop to the loop; at every other time they come from the loop.
        self._in_thread = False
        self._loop_thread = threading.get_ident()
        self._clean_session = clean_session
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=client_id,
            clean_session=None if self.mqtt5 else clean_session,
            protocol=MQTTProtocolVersion.MQTTv5 if self.mqtt5 else MQTTProtocolVersion.MQTTv311,
            transport="websockets" if url.websockets else "tcp", reconnect_on_failure=False,
        )
        client.connect_timeout = settings.connect_timeout
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.max_queued_messages_set(MAX_QUEUED)
        if url.username is not None:
            client.username_pw_set(url.username, url.password)
        if will is not None:
            client.will_set(will.topic, will.payload, will.qos, will.retain)
        if url.websockets:
            client.ws_set_options(path=url.path)
        self.tls = TlsWatch(settings) if url.tls else None
        if self.tls is not None:
            client.tls_set_context(self.tls.context())
        client.on_socket_open = self._on_socket_open
        client.on_socket_close = self._on_socket_close
        client.on_socket_register_write = self._on_register_write
        client.on_socket_unregister_write = self._on_unregister_write
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe  # on_publish is set while a QoS 1 one waits
        self._on_message = on_message
        self._received = 0  # messages so far: tells a loop_read that read one from one that did not
        client.on_message = self._message
        self._client = client
        self._started = False  # connect() once, reconnect() after
        self._sock: mqtt.SocketLike | None = None
        self._fd = -1
        self._options: socket.socket | None = None  # where TCP options are set on this socket
        self._pending: Callable[[], int] | None = None  # TLS bytes decrypted, not yet read
        self._reading = True  # False while paused: the reader is removed
        self._writing = False
        self._watching_write = False  # a writer is added: the socket was full
        self._misc: asyncio.TimerHandle | None = None
        self._connack: asyncio.Future[ReasonCode] | None = None
        self.lost: asyncio.Future[None] = self._loop.create_future()
        self._acks: dict[int, asyncio.Future[None]] = {}
        self._subacks: dict[int, asyncio.Future[list[ReasonCode]]] = {}

    # -- connecting and closing ----------------------------------------------------------------

    async def connect(self) -> None:
        """Open a connection and wait for the broker's CONNACK (within ``connect_timeout``).

        Raises :class:`ConnectRefused`, :class:`TlsRefused`, :class:`MqttError`, ``OSError`` or
        ``TimeoutError``. Cancelled, it waits for the worker thread (bounded by paho's
        ``connect_timeout``) and closes what it opened.
        """
        loop = self._loop
        self.lost = loop.create_future()
        self._connack = connack = loop.create_future()
        self._in_thread = True
        worker = asyncio.ensure_future(asyncio.to_thread(self._open))
        worker.add_done_callback(self._thread_done)
        try:
            async with asyncio.timeout(self.settings.connect_timeout):
                try:
                    await asyncio.shield(worker)
                except asyncio.CancelledError:
                    with contextlib.suppress(Exception):
                        await worker  # the thread goes on regardless: let it finish first
                    raise
                reason = await connack
        except BaseException:
            if connack.done() and not connack.cancelled():
                connack.exception()  # retrieved: the error raised here says it all
            connack.cancel()
            self.close()
            raise
        if reason.is_failure:
            self.close()
            raise ConnectRefused(reason, mqtt5=self.mqtt5)
        self._schedule_misc()

    def _thread_done(self, _worker: asyncio.Future[None]) -> None:
        # Runs in the loop after every callback the thread scheduled (call_soon is FIFO).
        self._in_thread = False

    def _open(self) -> None:
        """paho's blocking connect (worker thread)."""
        url, client = self.settings.url, self._client
        if self.tls is not None:
            self.tls.failure = None
        try:
            if self._started:
                rc = client.reconnect()
            else:
                self._started = True
                if self.mqtt5:
                    properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
                    # A clean session ends with the connection; a persistent one is kept.
                    properties.SessionExpiryInterval = (
                        0 if self._clean_session else self.settings.session_expiry)
                    rc = client.connect(url.host, url.port, self.settings.keepalive,
                                        clean_start=self._clean_session, properties=properties)
                else:
                    rc = client.connect(url.host, url.port, self.settings.keepalive)
        except BaseException as exc:
            close_leaked_sockets(exc)
            refusal = self.tls.refusal(exc) if self.tls is not None else None
            if refusal is not None:
                raise refusal from None
            raise
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"connect failed: {mqtt.error_string(rc)}")

    def close(self) -> None:
        """Say DISCONNECT (the broker drops the Last Will) and close the socket."""
        if self._sock is not None:
            self._client.disconnect()
        if self._sock is not None:  # the DISCONNECT did not fit in the socket: drop it anyway
            sock = self._sock
            self._on_socket_close(self._client, None, sock)
            sock.close()
        self._stopped(MqttError("connection closed"))

    def fail_publishes(self, error: Exception) -> None:
        """Stop waiting for the acknowledgements of earlier publishes (the Bus is closing)."""
        acks, self._acks = self._acks, {}
        self._client.on_publish = None
        for future in acks.values():
            if not future.done():
                future.set_exception(error)

    def _stopped(self, error: MqttError) -> None:
        if self._misc is not None:
            self._misc.cancel()
            self._misc = None
        if self._connack is not None and not self._connack.done():
            self._connack.set_exception(error)
        subacks, self._subacks = self._subacks, {}
        for future in subacks.values():
            if not future.done():
                future.set_exception(error)
        if not self.lost.done():
            self.lost.set_result(None)

    def _schedule_misc(self) -> None:
        self._misc = self._loop.call_later(_MISC_INTERVAL, self._run_misc)

    def _run_misc(self) -> None:
        self._client.loop_misc()  # may find the broker silent and close the connection
        if self._sock is not None:
            self._schedule_misc()

    # -- paho's socket callbacks ---------------------------------------------------------------

    def _from_thread(self) -> bool:
        return self._in_thread and threading.get_ident() != self._loop_thread

    def _in_loop(self, callback: Callable[..., None], *args: Any) -> None:
        if self._from_thread():
            self._loop.call_soon_threadsafe(callback, *args)
        else:
            callback(*args)

    def _on_socket_open(self, _client: mqtt.Client, _userdata: Any,
                        sock: mqtt.SocketLike) -> None:
        options = sock if isinstance(sock, socket.socket) else socket.socket(
            fileno=os.dup(sock.fileno()))  # a WebSocket wrapper: the same TCP socket
        options.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._in_loop(self._opened, sock, options)

    def _opened(self, sock: mqtt.SocketLike, options: socket.socket) -> None:
        self._sock, self._fd, self._options = sock, sock.fileno(), options
        self._pending = getattr(sock, "pending", None)
        if self._reading:
            self._loop.add_reader(self._fd, self._readable)

    def _on_socket_close(self, _client: mqtt.Client, _userdata: Any,
                         sock: mqtt.SocketLike) -> None:
        self._in_loop(self._closed, sock)

    def _closed(self, sock: mqtt.SocketLike) -> None:
        if sock is not self._sock:
            return
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._watching_write = False
        if self._options is not None and self._options is not sock:
            self._options.close()
        self._sock, self._fd, self._options, self._pending = None, -1, None, None

    def _on_register_write(self, _client: mqtt.Client, _userdata: Any,
                           _sock: mqtt.SocketLike) -> None:
        self._in_loop(self._flush)  # every publish passes here: write it now, as a transport would

    def _flush(self) -> None:
        if self._writing or self._sock is None:
            return
        self._writing = True
        try:
            self._client.loop_write()
        finally:
            self._writing = False
        if self._sock is not None and not self._watching_write and self._client.want_write():
            self._watching_write = True
            self._loop.add_writer(self._fd, self._writable)

    def _writable(self) -> None:
        self._writing = True
        try:
            self._client.loop_write()  # unregisters the writer once everything is out
        finally:
            self._writing = False

    def _on_unregister_write(self, _client: mqtt.Client, _userdata: Any,
                             _sock: mqtt.SocketLike) -> None:
        if self._watching_write:  # only ever set in the loop
            self._in_loop(self._unwatch_write)

    def _unwatch_write(self) -> None:
        if self._sock is not None and self._watching_write:
            self._watching_write = False
            self._loop.remove_writer(self._fd)

    def _readable(self) -> None:
        client = self._client
        # loop_read reads one packet when nothing of QoS 1 is in flight: go on while each call
        # brought a message (one recv finds the socket empty), rather than one per wake-up.
        for _ in range(_READ_BURST):
            received = self._received
            client.loop_read()
            if self._received == received or not self._reading or self._sock is None:
                break
        while self._reading and self._pending is not None and self._pending():
            client.loop_read()
        if _QUICKACK is not None and self._options is not None:
            self._options.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)

    def pause_reading(self) -> None:
        """Stop reading: the broker's packets wait in the socket, then in the broker."""
        if self._reading:
            self._reading = False
            if self._sock is not None:
                self._loop.remove_reader(self._fd)

    def resume_reading(self) -> None:
        if not self._reading:
            self._reading = True
            if self._sock is not None:
                self._loop.add_reader(self._fd, self._readable)
                if self._pending is not None and self._pending():
                    self._loop.call_soon(self._readable)  # select will not wake for these

    # -- paho's protocol callbacks ---------------------------------------------------------------

    def _message(self, _client: mqtt.Client, _userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._received += 1
        self._on_message(message)

    def _on_connect(self, _client: mqtt.Client, _userdata: Any, _flags: mqtt.ConnectFlags,
                    reason: ReasonCode, _properties: Properties | None) -> None:
        if self._connack is not None and not self._connack.done():
            self._connack.set_result(reason)

    def _on_disconnect(self, _client: mqtt.Client, _userdata: Any,
                       _flags: mqtt.DisconnectFlags, reason: ReasonCode,
                       _properties: Properties | None) -> None:
        why = "connection lost" if reason.is_failure else "connection closed"
        tls = self.tls.failure if self.tls is not None else None
        if tls is not None and self._connack is not None and not self._connack.done():
            # Refused after the handshake, before CONNACK: a TLS 1.3 broker's answer to a
            # client certificate it does not accept.
            self._stopped(TlsRefused(self.tls.explain(tls) or str(tls)))  # type: ignore[union-attr]
            return
        self._stopped(MqttError(f"{why}: {tls or str(reason).lower()}"))

    def _on_publish(self, _client: mqtt.Client, _userdata: Any, mid: int, reason: ReasonCode,
                    _properties: Properties) -> None:
        if self._writing:
            # A QoS 0 publish, written out (PUBACKs arrive in loop_read, never in loop_write):
            # its mid may equal that of a QoS 1 publish still waiting, 65535 publishes ago.
            return
        future = self._acks.pop(mid, None)
        if not self._acks:
            self._client.on_publish = None
        if future is None or future.done():
            return  # its caller stopped waiting
        if reason.is_failure:
            future.set_exception(MqttError(f"the broker refused it: {str(reason).lower()}"))
        else:
            future.set_result(None)

    def _on_subscribe(self, _client: mqtt.Client, _userdata: Any, mid: int,
                      reasons: list[ReasonCode], _properties: Properties | None) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result(reasons)

    # -- sending -------------------------------------------------------------------------------

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False,
                expiry: int | None = None) -> asyncio.Future[None] | None:
        """Hand a message to paho. QoS 0: written now (None). QoS 1: a future that resolves on
        the PUBACK, across reconnections. ``expiry`` (MQTT 5): seconds the broker may keep it
        for a subscriber that is away."""
        properties = None
        if expiry is not None and self.mqtt5:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.MessageExpiryInterval = expiry
        info = self._client.publish(topic, payload, qos, retain, properties)
        if info.rc == MQTTErrorCode.MQTT_ERR_QUEUE_SIZE:
            raise MqttError(f"{MAX_QUEUED} messages are waiting for the broker already")
        if qos == 0:
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                raise MqttError(f"publish failed: {mqtt.error_string(info.rc)}")
            return None
        # Not connected (NO_CONN), paho keeps it and sends it on the next connection.
        future: asyncio.Future[None] = self._loop.create_future()
        if not self._acks:
            # Only now: paho makes a ReasonCode and Properties for every QoS 0 publish it
            # reports, a tenth of the cost of a request when nothing waits for them.
            self._client.on_publish = self._on_publish
        self._acks[info.mid] = future
        return future

    def forget(self, future: asyncio.Future[None]) -> None:
        """Stop tracking a publish whose caller gave up (paho may still deliver it)."""
        for mid, waiting in list(self._acks.items()):
            if waiting is future:
                del self._acks[mid]
        if not self._acks:
            self._client.on_publish = None

    async def subscribe(self, topic_filter: str, qos: int) -> None:
        """Subscribe and wait for SUBACK; :class:`SubscriptionRefused` when refused."""
        rc, mid = self._client.subscribe(topic_filter, qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None:
            raise MqttError(f"subscribe failed: {mqtt.error_string(rc)}")
        future: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._subacks[mid] = future
        reasons = await future
        if any(reason.is_failure for reason in reasons):
            raise SubscriptionRefused(f"the broker refused the subscription to {topic_filter}")
