"""How a process reaches the broker: ``MIRRORHUB_BROKER_URL`` and friends."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from urllib.parse import quote, unquote, urlsplit

from schemas.errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 1883


@dataclass(frozen=True)
class BrokerURL:
    """``mqtt://user:password@host:port``; the password never shows in ``str()``."""

    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "tcp"):
            raise ConfigError(f"broker URL must start with mqtt://, got {url.split(':')[0]!r}")
        try:
            port = parts.port or DEFAULT_PORT
        except ValueError as exc:
            raise ConfigError(f"bad port in broker URL: {exc}") from exc
        return cls(
            host=parts.hostname or DEFAULT_HOST,
            port=port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

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
        return f"mqtt://{auth}{self.host}:{self.port}"

    def __str__(self) -> str:
        user = f"{self.username}@" if self.username else ""
        return f"mqtt://{user}{self.host}:{self.port}"


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

    def __post_init__(self) -> None:
        if self.namespace and (not self.namespace.endswith("/") or
                               any(c in self.namespace for c in "+#\0")
                               or self.namespace.startswith(("/", "$"))):
            raise ConfigError(f"topic namespace must look like 'name/', got {self.namespace!r}")

    @classmethod
    def from_env(cls, url: BrokerURL) -> BusSettings:
        env = os.environ
        try:
            timeout = float(env.get("MIRRORHUB_REQUEST_TIMEOUT", "5"))
        except ValueError as exc:
            raise ConfigError(f"MIRRORHUB_REQUEST_TIMEOUT: {exc}") from exc
        if not 0 < timeout <= 300:
            raise ConfigError("MIRRORHUB_REQUEST_TIMEOUT must be in (0, 300] seconds")
        return cls(url=url, request_timeout=timeout,
                   shared_group=env.get("MIRRORHUB_SHARED_GROUP") or None,
                   namespace=env.get("MIRRORHUB_TOPIC_NAMESPACE", ""))
