"""The embedded MQTT broker (amqtt, MQTT 3.1.1) as an async context manager.

::

    async with EmbeddedBroker(port=0, accounts={"auth": "s3cret"}) as broker:
        print(broker.port)  # the port actually bound; port=0 picks a free one

A port that is taken raises :class:`~schemas.errors.BrokerError` saying so and how to pick another.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from pathlib import Path
from typing import Any, Self

from amqtt.broker import Broker
from amqtt.errors import BrokerError as AmqttBrokerError
from amqtt.session import Session

from broker.access import SHARED_DEVICE
from schemas.errors import BrokerError

log = logging.getLogger(__name__)


class _Broker(Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt 0.12.1 with its retained-message leak closed.

    When a client connects, amqtt replays retained messages for every filter in its global
    subscription table, not only the connecting session's, so any client (a mirror, even a
    one-shot ``mosquitto_pub``) would receive retained messages it never subscribed to: another
    mirror's display, say. The unsolicited QoS 1 publishes also make short-lived clients drop
    the connection before their own message is handled. Here only the session's own filters are
    replayed, which is what amqtt's comment there intends.
    """

    async def stream_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                               listener_name: str) -> None:
        # amqtt returns from here once a client is gone, but leaves some sockets open (a client
        # that closed before CONNECT, say): closed here. Kept meanwhile so that shutdown can
        # close the connections of clients still there.
        self.__dict__.setdefault("open_streams", set()).add(writer)
        try:
            await super().stream_connected(reader, writer, listener_name)
        finally:
            self.open_streams.discard(writer)
            if not writer.is_closing():
                writer.transport.abort()

    def close_streams(self) -> None:
        for writer in self.__dict__.get("open_streams", ()):
            writer.transport.abort()

    async def _publish_retained_messages_for_subscription(
        self, subscription: tuple[str, int], session: Session
    ) -> None:
        holders = self._subscriptions.get(subscription[0], [])
        if any(holder.client_id == session.client_id for holder, _ in holders):
            await super()._publish_retained_messages_for_subscription(subscription, session)


def ensure_port_free(host: str, port: int, variable: str) -> None:
    """Raise :class:`BrokerError` saying plainly that ``host:port`` is taken, and by what
    setting to move."""
    try:
        probe = socket.create_server((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BrokerError(
                f"{host}:{port} is already in use; pick another port with {variable}=..."
            ) from exc
        raise BrokerError(f"cannot listen on {host}:{port}: {exc}") from exc
    probe.close()


def port_in_use_message(host: str, port: int) -> str:
    return (
        f"{host}:{port} is already in use, perhaps by another MQTT broker such as Mosquitto.\n"
        f"  Run the embedded broker on another port:  MIRRORHUB_BROKER_PORT=1884 make run\n"
        f"  or use the broker already there:          "
        f"MIRRORHUB_BROKER_URL=mqtt://{host}:{port} make run"
    )


class EmbeddedBroker:
    """amqtt listening on ``host:port`` with username/password authentication on, and mirror
    accounts (the shared ``device`` one, and those in ``devices_file``) kept to their own topics
    below ``namespace`` (:mod:`broker.access`)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        accounts: dict[str, str] | None = None,
        allow_anonymous: bool = False,
        devices_file: Path | None = None,
        namespace: str = "",
    ) -> None:
        self.host = host
        self.requested_port = port
        self.port = port
        self._accounts = dict(accounts or {})
        self._allow_anonymous = allow_anonymous
        self._devices_file = str(devices_file) if devices_file else None
        self._namespace = namespace
        self._broker: _Broker | None = None

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.requested_port}"}},
            "plugins": {
                "broker.plugins.CredentialsAuthPlugin": {
                    "accounts": self._accounts,
                    "allow_anonymous": self._allow_anonymous,
                    "devices_file": self._devices_file,
                },
                "broker.plugins.MirrorTopicsPlugin": {
                    "restricted": [name for name in self._accounts if name == SHARED_DEVICE],
                    "devices_file": self._devices_file,
                    "namespace": self._namespace,
                },
            },
        }

    def _check_port(self) -> None:
        # amqtt logs a traceback for a taken port; say it plainly before it tries.
        if self.requested_port == 0:
            return
        try:
            probe = socket.create_server((self.host, self.requested_port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BrokerError(port_in_use_message(self.host, self.requested_port)) from exc
            raise BrokerError(f"cannot listen on {self.host}:{self.requested_port}: {exc}") from exc
        probe.close()

    async def __aenter__(self) -> Self:
        self._check_port()
        broker = _Broker(self._config())
        try:
            await broker.start()
        except AmqttBrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                raise BrokerError(port_in_use_message(self.host, self.requested_port)) from exc
            raise BrokerError(f"the embedded MQTT broker cannot start: {exc}") from exc
        self._broker = broker
        server = broker._servers["default"].instance  # amqtt exposes no public accessor
        sockets: list[socket.socket] = list(getattr(server, "sockets", []) or [])
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("embedded MQTT broker listening on %s:%d", self.host, self.port)
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        broker, self._broker = self._broker, None
        if broker is not None:
            try:
                async with asyncio.timeout(10):
                    await broker.shutdown()
            except TimeoutError:
                log.warning("the embedded MQTT broker did not shut down within 10 s")
            finally:
                broker.close_streams()

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"
