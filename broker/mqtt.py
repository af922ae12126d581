"""One MQTT 3.1.1 client connection on an asyncio ``Protocol``: what :class:`broker.client.Bus`
needs and nothing more.

Why not paho-mqtt through aiomqtt (the first choice, see DESIGN.md): measured in
bench/bridge_hop.py, their per-message work was most of the cost of a request over MQTT. paho
encodes and decodes packets in Python with at least three ``recv`` calls a packet and one packet
per wake-up; aiomqtt adds a task and an ``asyncio.wait`` per received message and an Event plus
a ``wait_for`` task per publish. Here bytes arrive in one buffer, whole packets are cut from it
in ``data_received`` and handed on at once, and a QoS 0 publish is one ``transport.write``.

Small packets go out at once (asyncio transports set ``TCP_NODELAY``), and every read re-arms
``TCP_QUICKACK`` where the OS has it: a broker that leaves Nagle on (Mosquitto does by default)
would otherwise hold its next small packet until our delayed ACK, about 40 ms later.

Scope: CONNECT (credentials, Last Will, clean or persistent session, keep-alive), PUBLISH at
QoS 0 and 1 both ways, SUBSCRIBE, PINGREQ and DISCONNECT. Incoming QoS 1 messages are
acknowledged on receipt (at least once: handlers of QoS 1 topics are idempotent). QoS 2 is not
offered: subscriptions ask for at most QoS 1, so brokers never send it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

log = logging.getLogger(__name__)

CONNECT, CONNACK, PUBLISH, PUBACK = 0x10, 0x20, 0x30, 0x40
SUBSCRIBE, SUBACK, PINGREQ, PINGRESP, DISCONNECT = 0x82, 0x90, 0xC0, 0xD0, 0xE0


class MqttError(Exception):
    """The connection failed, broke or broke the protocol."""


class SubscriptionRefused(MqttError):
    """The broker answered SUBSCRIBE with 0x80: this account may not read that filter."""


class ConnectRefused(MqttError):
    """The broker answered CONNECT with a non-zero return code (4 and 5: bad credentials)."""

    def __init__(self, code: int) -> None:
        reasons = {1: "unacceptable protocol version", 2: "identifier rejected",
                   3: "server unavailable", 4: "bad user name or password",
                   5: "not authorised"}
        super().__init__(f"connection refused: {reasons.get(code, f'code {code}')}")
        self.code = code


@dataclass(frozen=True)
class Will:
    """The Last Will: what the broker publishes when this client vanishes without DISCONNECT."""

    topic: str
    payload: bytes | str
    qos: int = 0
    retain: bool = False


@dataclass(frozen=True)
class Incoming:
    topic: str
    payload: bytes
    qos: int
    retain: bool


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (``+``, ``#``, and ``$share/<group>/``)."""
    if topic_filter.startswith("$share/"):
        topic_filter = topic_filter.split("/", 2)[2]
    wanted, levels = topic_filter.split("/"), topic.split("/")
    if topic.startswith("$") and wanted[0] in ("+", "#"):
        return False  # wildcards do not reach $SYS-like topics
    for index, want in enumerate(wanted):
        if want == "#":
            return True
        if index >= len(levels) or (want != "+" and want != levels[index]):
            return False
    return len(levels) == len(wanted)


def _remaining_length(buffer: bytearray, index: int) -> tuple[int, int] | None:
    """The remaining length that starts at ``index`` and where the body starts, or None while
    its bytes have not all arrived."""
    length, multiplier = 0, 1
    for position in range(index, min(index + 4, len(buffer))):
        byte = buffer[position]
        length += (byte & 0x7F) * multiplier
        if not byte & 0x80:
            return length, position + 1
        multiplier *= 128
    if len(buffer) >= index + 4:
        raise MqttError("malformed remaining length")
    return None


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack("!H", len(data)) + data


def _blob(data: bytes) -> bytes:
    return struct.pack("!H", len(data)) + data


def packet(first: int, body: bytes) -> bytes:
    """A whole packet: the first byte, the remaining length, then ``body``."""
    head = bytearray([first])
    length = len(body)
    while True:
        byte, length = length % 128, length // 128
        head.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(head) + body


def connect_packet(client_id: str, username: str | None, password: str | None,
                   will: Will | None, clean_session: bool, keepalive: int) -> bytes:
    flags = 0x02 if clean_session else 0
    payload = _string(client_id)
    if will is not None:
        flags |= 0x04 | (will.qos << 3) | (0x20 if will.retain else 0)
        data = will.payload.encode() if isinstance(will.payload, str) else will.payload
        payload += _string(will.topic) + _blob(data)
    if username is not None:
        flags |= 0x80
        payload += _string(username)
        if password is not None:
            flags |= 0x40
            payload += _string(password)
    header = _string("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive)
    return packet(CONNECT, header + payload)


class Connection(asyncio.Protocol):
    """One connection to a broker. Open it with :meth:`open`; ``on_message`` is called, in the
    event loop, for every PUBLISH received; :attr:`closed` resolves when the connection ends."""

    def __init__(self, on_message: Callable[[Incoming], None]) -> None:
        self._on_message = on_message
        loop = asyncio.get_running_loop()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._connack: asyncio.Future[int] = loop.create_future()
        self._waiting: dict[int, asyncio.Future[bytes]] = {}  # packet id -> PUBACK/SUBACK
        self._next_id = 0
        self._heard = 0.0  # loop time of the last packet received
        self._keepalive: asyncio.Task[None] | None = None
        self._quickack: socket.socket | None = None

    # -- opening and closing ------------------------------------------------------------------

    async def open(self, host: str, port: int, *, client_id: str, username: str | None,
                   password: str | None, will: Will | None, clean_session: bool,
                   keepalive: int, timeout: float) -> bool:
        """Connect and wait for CONNACK; returns whether the broker kept a session for us.
        Raises :class:`ConnectRefused`, :class:`MqttError` or ``OSError``."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(timeout):
            await loop.create_connection(lambda: self, host, port)
            self._write(connect_packet(client_id, username, password, will, clean_session,
                                       keepalive))
            flags = await self._connack
        if keepalive:
            self._keepalive = loop.create_task(self._keep_alive(keepalive))
        return bool(flags & 1)

    def close(self) -> None:
        """Say goodbye (the broker drops the Last Will) and close."""
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.write(packet(DISCONNECT, b""))
            transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def pause_reading(self) -> None:
        if self._transport is not None and self._transport.is_reading():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_reading():
            self._transport.resume_reading()

    # -- sending -------------------------------------------------------------------------------

    def _write(self, data: bytes) -> None:
        transport = self._transport
        if transport is None or transport.is_closing():
            raise MqttError("not connected")
        transport.write(data)

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_id = self._next_id % 65535 + 1
            if self._next_id not in self._waiting:
                return self._next_id
        raise MqttError("65535 packets are waiting for acknowledgement")

    def _expect(self, packet_id: int) -> asyncio.Future[bytes]:
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._waiting[packet_id] = future
        return future

    def publish_now(self, topic: str, payload: bytes, retain: bool = False) -> None:
        """QoS 0: written at once, nothing to wait for."""
        self._write(packet(PUBLISH | (1 if retain else 0), _string(topic) + payload))

    async def publish(self, topic: str, payload: bytes, qos: int = 0,
                      retain: bool = False) -> None:
        """Publish; at QoS 1, return once the broker has acknowledged it."""
        if qos == 0:
            self.publish_now(topic, payload, retain)
            return
        if qos != 1:
            raise ValueError("QoS 0 or 1")
        packet_id = self._packet_id()
        acked = self._expect(packet_id)
        first = PUBLISH | 0x02 | (1 if retain else 0)
        try:
            self._write(packet(first, _string(topic) + struct.pack("!H", packet_id) + payload))
            await acked
        finally:
            self._waiting.pop(packet_id, None)

    async def subscribe(self, topic_filter: str, qos: int) -> None:
        if qos not in (0, 1):
            raise ValueError("subscriptions are QoS 0 or 1")
        packet_id = self._packet_id()
        acked = self._expect(packet_id)
        try:
            self._write(packet(SUBSCRIBE, struct.pack("!H", packet_id) + _string(topic_filter)
                               + bytes([qos])))
            codes = await acked
        finally:
            self._waiting.pop(packet_id, None)
        if any(code == 0x80 for code in codes):
            raise SubscriptionRefused(f"the broker refused the subscription to {topic_filter}")

    async def _keep_alive(self, keepalive: int) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(keepalive / 2)
            if loop.time() - self._heard > keepalive * 1.5:
                log.warning("the broker has been silent for %d s: connection dropped",
                            keepalive * 1.5)
                self.abort()
                return
            with contextlib.suppress(MqttError):
                self._write(packet(PINGREQ, b""))

    # -- receiving (asyncio.Protocol) ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports have the Transport methods without being its subclasses.
        self._transport = cast(asyncio.Transport, transport)
        sock = transport.get_extra_info("socket")
        self._quickack = sock if hasattr(socket, "TCP_QUICKACK") and sock is not None else None
        self._heard = asyncio.get_running_loop().time()

    def connection_lost(self, exc: Exception | None) -> None:
        self._transport = None
        if self._keepalive is not None:
            self._keepalive.cancel()
        error = MqttError(f"connection lost: {exc}" if exc else "connection closed")
        if not self._connack.done():
            self._connack.set_exception(error)
        for future in self._waiting.values():
            if not future.done():
                future.set_exception(error)
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self._heard = asyncio.get_running_loop().time()
        if self._quickack is not None:
            self._quickack.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        buffer = self._buffer
        buffer += data
        start = 0
        try:
            while len(buffer) - start >= 2:
                found = _remaining_length(buffer, start + 1)
                if found is None:
                    break
                length, index = found
                end = index + length
                if end > len(buffer):
                    break
                self._handle(buffer[start], bytes(buffer[index:end]))
                start = end
        except (MqttError, UnicodeDecodeError, struct.error, IndexError) as exc:
            log.warning("protocol error from the broker: %s", exc)
            self.abort()
        except Exception:  # a bug of ours must cost this connection, not the process
            log.exception("failed on a packet from the broker")
            self.abort()
        del buffer[:start]

    def _handle(self, first: int, body: bytes) -> None:
        kind = first & 0xF0
        if kind == PUBLISH:
            qos, retain = (first >> 1) & 0x03, bool(first & 0x01)
            (size,) = struct.unpack_from("!H", body)
            topic = body[2:2 + size].decode()
            offset = 2 + size
            if qos:
                packet_id = body[offset:offset + 2]
                offset += 2
                if qos == 1:
                    self._write(packet(PUBACK, packet_id))
                else:
                    raise MqttError("QoS 2 was never asked for")
            self._on_message(Incoming(topic, body[offset:], qos, retain))
        elif kind in (PUBACK, SUBACK):
            (packet_id,) = struct.unpack_from("!H", body)
            future = self._waiting.get(packet_id)
            if future is not None and not future.done():
                future.set_result(body[2:])
        elif kind == CONNACK:
            if body[1] != 0:
                self._connack.set_exception(ConnectRefused(body[1]))
            elif not self._connack.done():
                self._connack.set_result(body[0])
        elif kind != PINGRESP:
            log.debug("ignored an MQTT packet of type %#x", kind)
