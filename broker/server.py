"""The embedded MQTT broker (amqtt, MQTT 3.1.1) as an async context manager.

::

    async with EmbeddedBroker(port=0, accounts={"auth": "s3cret"}) as broker:
        print(broker.port)  # the port actually bound; port=0 picks a free one

    async with EmbeddedBroker(port=0, accounts=..., tls_cert=cert, tls_key=key,
                              tls_port=0, ws_port=0, wss_port=0) as broker:
        broker.tls_port, broker.ws_port, broker.wss_port  # MQTT over TLS, WebSockets, both

A port that is taken raises :class:`~schemas.errors.BrokerError` saying so and how to pick another.

**TLS.** The TLS listeners (``tls_port``, and WebSockets over TLS on ``wss_port``) present
``tls_cert`` (the chain, leaf first) and ``tls_key``; clients authenticate with username and
password as on the plain listener. amqtt's own TLS context asks every client for a certificate
(``CERT_OPTIONAL``) and checks one it is sent against the system's CAs: clients would be asked
for a certificate that nothing uses (a browser on ``wss://`` offers its user a certificate
picker), and a client holding a certificate of a private CA would fail the handshake. So here
the server asks for none (``CERT_NONE``), with Python's defaults otherwise (TLS 1.2 or later).
Client certificates are Mosquitto's (``require_certificate``, docs/operations.md).
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import ssl
from pathlib import Path
from typing import Any, Self

from amqtt.adapters import ReaderAdapter, WriterAdapter
from amqtt.broker import Broker
from amqtt.contexts import Action
from amqtt.errors import BrokerError as AmqttBrokerError
from amqtt.errors import MQTTError
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import Session
from amqtt.utils import gen_client_id

from broker.fanout import IndexedFanOut, Subscriptions
from broker.shedding import Backlog, Shed, SheddingHandler, incoming_qos, is_frame
from schemas.errors import BrokerError, ConfigError

log = logging.getLogger(__name__)


class _Broker(IndexedFanOut, Broker):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt 0.12.1 with its subscription table indexed and safe to change while a message is
    broadcast, retained messages replayed for a session's own filters only
    (:mod:`broker.fanout`), every CONNECT judged (credentials, client id, Last Will:
    :mod:`broker.plugins`) before any session is touched (:meth:`_initialize_client_session`),
    and QoS 0 camera frames shed under overload, the newest per mirror kept
    (:mod:`broker.shedding`).
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

    def __init__(self, config: dict[str, Any], tls_context: ssl.SSLContext | None,
                 namespace: str = "") -> None:
        super().__init__(config)
        self._subscriptions = Subscriptions()
        self.tls_context = tls_context
        self.namespace = namespace
        self.shed = Shed()
        self._broadcast_queue = Backlog(self.shed)

    async def _handle_message_delivery(self, client_session: Session,
                                       handler: BrokerProtocolHandler,
                                       wait_deliver: asyncio.Future[Any]) -> bool:
        # The QoS the client sent the message with, for _broadcast_message (amqtt drops it).
        token = incoming_qos.set(getattr(wait_deliver.result(), "qos", None))
        try:
            return bool(await super()._handle_message_delivery(client_session, handler,
                                                               wait_deliver))
        finally:
            incoming_qos.reset(token)

    async def _broadcast_message(self, session: Session | None, topic: str | None,
                                 data: bytes | bytearray | None,
                                 force_qos: int | None = None) -> None:
        if (session is not None and force_qos is None and incoming_qos.get() == 0
                and topic is not None and is_frame(topic, self.namespace)):
            self._broadcast_queue.put_frame({"session": session, "topic": topic, "data": data})
            return
        await super()._broadcast_message(session, topic, data, force_qos)

    def _create_ssl_context(self, listener: object) -> ssl.SSLContext:
        # amqtt calls this for every listener with ``ssl: on``: ours instead of amqtt's.
        if self.tls_context is None:
            raise BrokerError("a TLS listener without a TLS context")
        return self.tls_context

    def close_streams(self) -> None:
        for writer in self.__dict__.get("open_streams", ()):
            writer.transport.abort()

    async def _initialize_client_session(self, reader: ReaderAdapter, writer: WriterAdapter,
                                         remote_address: str, remote_port: int,
                                         ) -> tuple[BrokerProtocolHandler, Session]:
        """The CONNECT is judged before any session is touched, then the session is found.

        amqtt 0.12.1 first looks the client id up (a clean session deletes the old one and its
        subscriptions, a persistent one is handed the newcomer's credentials and Will) and
        asks the auth plugins only later: one refused CONNECT with the messaging service's id
        left that service connected and deaf. Here the plugins see the CONNECT alone; a refused
        one is answered "not authorised" and changes nothing.
        """
        try:
            handler, incoming = await SheddingHandler.init_from_connect(
                reader, writer, self.plugins_manager)
        except MQTTError:
            await writer.close()
            raise
        handler.shed, handler.namespace = self.shed, self.namespace
        if not await super()._authenticate(incoming, None):
            handler.attach(incoming, reader, writer)
            await handler.mqtt_connack_authorize(False)
            await writer.close()
            raise MQTTError(f"refused {incoming.client_id!r} from {remote_address}:{remote_port}")
        session = await self._session_for(incoming)
        session.admitted = True  # for _authenticate, which amqtt calls next
        delay = self.config.get("timeout-disconnect-delay", 0)
        if session.keep_alive > 0 and isinstance(delay, int):
            session.keep_alive += delay
        return handler, session

    async def _topic_filtering(self, session: Session, topic: str, action: Action) -> bool:
        """Whether every topic plugin lets ``session`` do ``action`` on ``topic``, as amqtt
        decides it, asked in line.

        amqtt 0.12.1 asks through ``map_plugin_topic``, which makes a task for each plugin and
        gathers them, on every publish and again for every subscriber it delivers to: about a
        seventh of the embedded broker's time on the message path (bench/README.md). The
        plugins (ours, :class:`broker.plugins.MirrorTopicsPlugin`) answer without waiting.
        """
        manager = self.plugins_manager
        if not manager.is_topic_filtering_enabled():
            return True
        for plugin in manager._topic_plugins:  # amqtt has no public list
            if hasattr(plugin, "topic_filtering") and not await plugin.topic_filtering(
                    session=session, topic=topic, action=action):
                return False
        return True

    async def _session_for(self, incoming: Session) -> Session:
        """The session an admitted CONNECT continues (as amqtt would find it), or ``incoming``."""
        if incoming.clean_session:
            if incoming.client_id:
                await self._delete_session(incoming.client_id)
            else:
                incoming.client_id = gen_client_id()
            incoming.parent = 0
            return incoming
        existing = self._sessions.get(incoming.client_id)
        if existing is None:
            incoming.parent = 0
            return incoming
        session: Session = existing[0]
        # The newcomer's credentials, Will and role, all of them (amqtt forgets will_retain).
        for name in ("will_flag", "will_message", "will_topic", "will_qos", "will_retain",
                     "keep_alive", "username", "password", "is_anonymous", "mirror_id"):
            setattr(session, name, getattr(incoming, name, None))
        session.parent = 1
        return session

    async def _authenticate(self, session: Session, listener: object) -> bool:
        # Judged in _initialize_client_session already, before the session was looked up.
        admitted = bool(getattr(session, "admitted", False))
        session.admitted = False
        return admitted


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    """The TLS context of the embedded broker's TLS listeners (see the module docstring); a
    missing, unreadable or mismatched certificate or key is a one-line :class:`BrokerError`."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.verify_mode = ssl.CERT_NONE
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:  # not PEM, or the key is not the certificate's
        reason = exc.reason.lower().replace("_", " ") if exc.reason else "not PEM"
        raise BrokerError(f"cannot use the TLS certificate {cert} with key {key}: "
                          f"{reason}") from exc
    except OSError as exc:
        raise BrokerError(f"cannot read the TLS certificate {cert} or key {key}: "
                          f"{exc.strerror or exc}") from exc
    return context


def ensure_port_free(host: str, port: int, variable: str, in_use: str | None = None) -> None:
    """Raise :class:`BrokerError` saying plainly that ``host:port`` is taken (``in_use``, or
    by default which setting moves it)."""
    try:
        probe = socket.create_server((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BrokerError(
                in_use or f"{host}:{port} is already in use; pick another port with {variable}=..."
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
    below ``namespace`` (:mod:`broker.access`).

    ``tls_port`` (MQTT over TLS), ``ws_port`` (WebSockets) and ``wss_port`` (WebSockets over TLS)
    add listeners on ``host``; None leaves one off, 0 picks a free port. The TLS ones need
    ``tls_cert`` and ``tls_key``. After entering, the ``*port`` attributes hold the bound ports.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 1883,
        *,
        accounts: dict[str, str] | None = None,
        allow_anonymous: bool = False,
        devices_file: Path | None = None,
        namespace: str = "",
        tls_cert: Path | None = None,
        tls_key: Path | None = None,
        tls_port: int | None = None,
        ws_port: int | None = None,
        wss_port: int | None = None,
    ) -> None:
        if (tls_port is not None or wss_port is not None) and (tls_cert is None
                                                               or tls_key is None):
            raise ConfigError("the embedded broker's TLS listeners (tls_port, wss_port) need "
                              "both a certificate (tls_cert) and its key (tls_key)")
        self.host = host
        self.requested_port = port
        self.port = port
        # Listener name -> requested port, for the listeners beyond the plain one.
        self._extra = {name: value for name, value in
                       (("tls", tls_port), ("ws", ws_port), ("wss", wss_port))
                       if value is not None}
        self.tls_port, self.ws_port, self.wss_port = tls_port, ws_port, wss_port
        self._tls = (tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
        self._accounts = dict(accounts or {})
        self._allow_anonymous = allow_anonymous
        self._devices_file = str(devices_file) if devices_file else None
        self._namespace = namespace
        self._broker: _Broker | None = None

    def _listeners(self) -> dict[str, dict[str, Any]]:
        listeners: dict[str, dict[str, Any]] = {
            "default": {"type": "tcp", "bind": f"{self.host}:{self.requested_port}"}}
        for name, port in self._extra.items():
            listener: dict[str, Any] = {"type": "tcp" if name == "tls" else "ws",
                                        "bind": f"{self.host}:{port}"}
            if name != "ws" and self._tls is not None:
                # amqtt wants the files named (and present); the context is server_tls_context's.
                listener.update(ssl=True, certfile=self._tls[0], keyfile=self._tls[1])
            listeners[name] = listener
        return listeners

    def _config(self) -> dict[str, Any]:
        return {
            "listeners": self._listeners(),
            "plugins": {
                "broker.plugins.CredentialsAuthPlugin": {
                    "accounts": self._accounts,
                    "allow_anonymous": self._allow_anonymous,
                    "devices_file": self._devices_file,
                    "namespace": self._namespace,
                },
                "broker.plugins.MirrorTopicsPlugin": {"namespace": self._namespace},
            },
        }

    def _check_ports(self) -> None:
        # amqtt logs a traceback for a taken port; say it plainly before it tries.
        if self.requested_port != 0:
            ensure_port_free(self.host, self.requested_port, "MIRRORHUB_BROKER_PORT",
                             port_in_use_message(self.host, self.requested_port))
        for name, port in self._extra.items():
            if port != 0:
                ensure_port_free(self.host, port, f"MIRRORHUB_BROKER_{name.upper()}_PORT")

    def _bound_port(self, broker: _Broker, listener: str) -> int | None:
        if listener not in broker._servers:
            return None
        server = broker._servers[listener].instance  # amqtt exposes no public accessor
        sockets: list[socket.socket] = list(getattr(server, "sockets", []) or [])
        return int(sockets[0].getsockname()[1]) if sockets else None

    async def __aenter__(self) -> Self:
        self._check_ports()
        tls_context = server_tls_context(*self._tls) if self._tls else None
        broker = _Broker(self._config(), tls_context, self._namespace)
        try:
            await broker.start()
        except AmqttBrokerError as exc:
            cause = exc.__cause__
            if isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE:
                raise BrokerError(port_in_use_message(self.host, self.requested_port)) from exc
            raise BrokerError(f"the embedded MQTT broker cannot start: {exc}") from exc
        self._broker = broker
        self.port = self._bound_port(broker, "default") or self.port
        self.tls_port = self._bound_port(broker, "tls")
        self.ws_port = self._bound_port(broker, "ws")
        self.wss_port = self._bound_port(broker, "wss")
        log.info("embedded MQTT broker listening on %s:%d%s", self.host, self.port,
                 "".join(f", {name} on {port}" for name, port in
                         (("TLS", self.tls_port), ("WebSockets", self.ws_port),
                          ("WebSockets over TLS", self.wss_port)) if port is not None))
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
    def topic_filters(self) -> int:
        """How many topic filters have subscribers now (0 when the broker is not running)."""
        return len(self._broker._subscriptions) if self._broker is not None else 0

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"
