"""How a process reaches the broker: ``MIRRORHUB_BROKER_URL`` and friends.

The URL's scheme picks the transport: ``mqtt://`` (or ``tcp://``) plain TCP, ``mqtts://`` TLS,
``ws://`` WebSockets, ``wss://`` WebSockets over TLS; a WebSocket URL's path is the HTTP path
of the broker's WebSocket endpoint (``/mqtt`` when the URL has none). TLS verifies the broker's
certificate and host name against the system's CAs, or against ``MIRRORHUB_BROKER_CA`` alone;
``MIRRORHUB_BROKER_CERT`` (and ``MIRRORHUB_BROKER_KEY``) present a client certificate.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from schemas.errors import ConfigError
from services.environment import number

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883
# Each scheme's usual port: MQTT's registered ones, and HTTP's for WebSockets (as in URLs).
DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ws": 80, "wss": 443}
TLS_SCHEMES = ("mqtts", "wss")
WEBSOCKET_SCHEMES = ("ws", "wss")
DEFAULT_WS_PATH = "/mqtt"
DEFAULT_SESSION_EXPIRY = 86_400  # seconds an MQTT 5 broker keeps a persistent session offline


@dataclass(frozen=True)
class BrokerURL:
    """``mqtt://user:password@host:port`` (or ``mqtts``, ``ws``, ``wss``, with a path for the
    WebSocket ones); the password never shows in ``str()``."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None
    scheme: str = "mqtt"
    path: str = DEFAULT_WS_PATH  # the WebSocket endpoint; unused by mqtt:// and mqtts://

    def __post_init__(self) -> None:
        if self.scheme not in DEFAULT_PORTS:
            raise ConfigError(f"broker URL scheme must be one of mqtt, mqtts, ws, wss; "
                              f"got {self.scheme!r}")

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        parts = urlsplit(url)
        if parts.scheme not in DEFAULT_PORTS:
            raise ConfigError("broker URL must start with mqtt://, mqtts://, ws:// or wss://, "
                              f"got {url.split(':')[0]!r}")
        try:
            port = parts.port or DEFAULT_PORTS[parts.scheme]
        except ValueError as exc:
            raise ConfigError(f"bad port in broker URL: {exc}") from exc
        path = parts.path or DEFAULT_WS_PATH
        if parts.query:
            path += "?" + parts.query
        if parts.scheme not in WEBSOCKET_SCHEMES and parts.path not in ("", "/"):
            raise ConfigError(f"a path ({parts.path}) only means something in ws:// and wss:// "
                              "broker URLs")
        return cls(
            host=parts.hostname or DEFAULT_HOST,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            scheme="mqtt" if parts.scheme == "tcp" else parts.scheme,
            path=path,
        )

    @property
    def tls(self) -> bool:
        return self.scheme in TLS_SCHEMES

    @property
    def websockets(self) -> bool:
        return self.scheme in WEBSOCKET_SCHEMES

    def with_credentials(self, username: str, password: str) -> BrokerURL:
        return replace(self, username=username, password=password)

    def to_url(self) -> str:
        """The full URL, password included, for handing to another process."""
        auth = ""
        if self.username:
            auth = quote(self.username, safe="")
            if self.password:
                auth += ":" + quote(self.password, safe="")
            auth += "@"
        return self._url(auth)

    def __str__(self) -> str:
        return self._url(f"{self.username}@" if self.username else "")

    def _url(self, auth: str) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        path = self.path if self.websockets else ""
        return f"{self.scheme}://{auth}{host}:{self.port}{path}"


TLS_FILES = ("MIRRORHUB_BROKER_CA", "MIRRORHUB_BROKER_CERT", "MIRRORHUB_BROKER_KEY")


def _file(name: str) -> Path | None:
    raw = os.environ.get(name)
    if not raw:
        return None
    path = Path(raw).expanduser()
    if not path.is_file():
        raise ConfigError(f"{name}: no such file: {raw}")
    return path


def flag(name: str) -> bool:
    """A yes-or-no ``MIRRORHUB_*`` setting: 1, true or yes; 0, false, no or unset."""
    raw = os.environ.get(name, "0").strip().lower()
    if raw not in ("1", "true", "yes", "0", "false", "no", ""):
        raise ConfigError(f"{name} must be 1 or 0, got {raw!r}")
    return raw in ("1", "true", "yes")


@dataclass(frozen=True)
class BusSettings:
    """What a :class:`broker.client.Bus` needs besides its identity."""

    url: BrokerURL
    request_timeout: float = 5.0
    # "$share/<group>/" subscriptions for services; None on brokers without them (amqtt).
    shared_group: str | None = None
    connect_timeout: float = 10.0
    # Prefix of every topic on the wire ("" or ending in "/"): deployments sharing a broker.
    namespace: str = ""
    # TLS (mqtts://, wss://): None trusts the system's CAs; a file trusts only the CAs in it.
    ca_file: Path | None = None
    cert_file: Path | None = None  # a client certificate, for brokers that ask for one
    key_file: Path | None = None  # its private key, unless cert_file holds it too
    # MQTT 5 instead of 3.1.1 (Mosquitto, EMQX; not amqtt): requests expire at the broker with
    # their deadline, persistent sessions after session_expiry seconds offline.
    mqtt5: bool = False
    session_expiry: int = DEFAULT_SESSION_EXPIRY
    keepalive: int = 30  # seconds; the broker and the Bus each drop a peer silent for 1.5x

    def __post_init__(self) -> None:
        if self.namespace and (not self.namespace.endswith("/") or
                               any(c in self.namespace for c in "+#\0")
                               or self.namespace.startswith(("/", "$"))):
            raise ConfigError(f"topic namespace must look like 'name/', got {self.namespace!r}")
        if (self.ca_file or self.cert_file) and not self.url.tls:
            raise ConfigError(f"a CA or client certificate is for mqtts:// and wss:// brokers; "
                              f"{self.url} is not TLS")
        if self.key_file and not self.cert_file:
            raise ConfigError("MIRRORHUB_BROKER_KEY needs MIRRORHUB_BROKER_CERT")

    @classmethod
    def from_env(cls, url: BrokerURL) -> BusSettings:
        """The settings of a Bus to ``url``; the TLS files only apply to a TLS one (the
        services inside ``mirrorhub up`` reach the embedded broker in plain TCP)."""
        env = os.environ
        return cls(url=url,
                   request_timeout=number("MIRRORHUB_REQUEST_TIMEOUT", 5.0, 0.001, 300.0),
                   shared_group=env.get("MIRRORHUB_SHARED_GROUP") or None,
                   namespace=env.get("MIRRORHUB_TOPIC_NAMESPACE", ""),
                   ca_file=_file("MIRRORHUB_BROKER_CA") if url.tls else None,
                   cert_file=_file("MIRRORHUB_BROKER_CERT") if url.tls else None,
                   key_file=_file("MIRRORHUB_BROKER_KEY") if url.tls else None,
                   mqtt5=flag("MIRRORHUB_BROKER_MQTT5"),
                   session_expiry=number("MIRRORHUB_SESSION_EXPIRY", DEFAULT_SESSION_EXPIRY, 0,
                                         2**32 - 1))
