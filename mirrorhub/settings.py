"""Process-level settings from ``MIRRORHUB_*`` variables; the table is in docs/operations.md."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from broker.settings import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    TLS_FILES,
    BrokerURL,
    BusSettings,
    flag,
)
from mirrorhub.credentials import device_passwords, load_or_create_accounts
from mirrorhub.logs import log_format
from schemas.errors import ConfigError
from schemas.files import MAX_UPLOAD_DEFAULT
from services.messaging.config import max_upload_bytes

DEFAULT_TLS_PORT = 8883


def _port(name: str, default: int) -> int:
    raw = os.environ.get(name) or str(default)
    if not raw.isdigit() or not 0 <= int(raw) <= 65535:
        raise ConfigError(f"{name} must be a port number, got {raw!r}")
    return int(raw)


def _optional_port(name: str) -> int | None:
    return _port(name, 0) if os.environ.get(name) else None


@dataclass(frozen=True)
class BrokerListeners:
    """The embedded broker's listeners beyond its plain one (for mirrors and browsers; the
    services inside ``mirrorhub up`` keep to the plain 127.0.0.1 one). None is off."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_port: int | None = None
    ws_port: int | None = None
    wss_port: int | None = None

    @classmethod
    def from_env(cls) -> BrokerListeners:
        env = os.environ
        cert, key = env.get("MIRRORHUB_BROKER_TLS_CERT"), env.get("MIRRORHUB_BROKER_TLS_KEY")
        if bool(cert) != bool(key):
            raise ConfigError("MIRRORHUB_BROKER_TLS_CERT and MIRRORHUB_BROKER_TLS_KEY go "
                              "together: the certificate (chain) and its private key")
        tls_port, wss_port = (_optional_port("MIRRORHUB_BROKER_TLS_PORT"),
                              _optional_port("MIRRORHUB_BROKER_WSS_PORT"))
        if not cert and (tls_port is not None or wss_port is not None):
            raise ConfigError("MIRRORHUB_BROKER_TLS_PORT and MIRRORHUB_BROKER_WSS_PORT need "
                              "MIRRORHUB_BROKER_TLS_CERT and MIRRORHUB_BROKER_TLS_KEY")
        if cert and tls_port is None:
            tls_port = DEFAULT_TLS_PORT
        return cls(tls_cert=Path(cert) if cert else None, tls_key=Path(key) if key else None,
                   tls_port=tls_port, ws_port=_optional_port("MIRRORHUB_BROKER_WS_PORT"),
                   wss_port=wss_port)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    external_broker: BrokerURL | None
    broker_host: str
    broker_port: int
    allow_anonymous: bool
    bridge_host: str
    bridge_port: int
    namespace: str = ""
    require_token: bool = False  # the bridge's messaging endpoints want a bearer token
    cookie_secure: bool = False  # the session API's cookie is Secure (the bridge is behind HTTPS)
    trusted_proxies: str = ""  # peers whose X-Forwarded-For the bridge believes (throttling)
    max_upload: int = MAX_UPLOAD_DEFAULT  # the largest file /api/upload takes, in bytes
    listeners: BrokerListeners = BrokerListeners()
    metrics_token: str | None = None  # GET /metrics on the bridge wants it (None: open)
    metrics_host: str = "127.0.0.1"  # where MIRRORHUB_METRICS_PORT listens
    metrics_port: int | None = None  # this process's own /metrics endpoint (None: none)
    log_format: str = "text"  # or "json" (mirrorhub/logs.py)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        url = env.get("MIRRORHUB_BROKER_URL")
        external = BrokerURL.parse(url) if url else None
        given = [name for name in TLS_FILES if env.get(name)]
        if external is not None and not external.tls and given:
            raise ConfigError(f"{' and '.join(given)} are for a TLS broker, but "
                              f"MIRRORHUB_BROKER_URL is {external}: use mqtts:// or wss://")
        return cls(
            data_dir=Path(env.get("MIRRORHUB_DATA_DIR") or "data").resolve(),
            external_broker=external,
            broker_host=env.get("MIRRORHUB_BROKER_HOST") or DEFAULT_HOST,
            broker_port=_port("MIRRORHUB_BROKER_PORT", DEFAULT_PORT),
            allow_anonymous=flag("MIRRORHUB_BROKER_ANONYMOUS"),
            bridge_host=env.get("MIRRORHUB_BRIDGE_HOST") or "127.0.0.1",
            bridge_port=_port("MIRRORHUB_BRIDGE_PORT", 8000),
            namespace=env.get("MIRRORHUB_TOPIC_NAMESPACE", ""),
            require_token=flag("MIRRORHUB_REQUIRE_TOKEN"),
            cookie_secure=flag("MIRRORHUB_COOKIE_SECURE"),
            trusted_proxies=env.get("MIRRORHUB_TRUSTED_PROXIES", "").strip(),
            listeners=BrokerListeners.from_env(),
            max_upload=max_upload_bytes(),
            metrics_token=env.get("MIRRORHUB_METRICS_TOKEN") or None,
            metrics_host=env.get("MIRRORHUB_METRICS_HOST") or "127.0.0.1",
            metrics_port=_optional_port("MIRRORHUB_METRICS_PORT"),
            log_format=log_format(env.get("MIRRORHUB_LOG_FORMAT")),
        )

    @property
    def accounts_file(self) -> Path:
        return self.data_dir / "broker_accounts.json"

    def accounts(self) -> dict[str, str]:
        return load_or_create_accounts(self.accounts_file)

    @property
    def devices_file(self) -> Path:
        return self.data_dir / "device_accounts.json"

    def device_bus(self, mirror_id: str) -> BusSettings:
        """How mirror ``mirror_id`` reaches the broker: the external URL as given, or the
        embedded broker with the mirror's own account (made on first use)."""
        return self.device_buses([mirror_id])[mirror_id]

    def device_buses(self, mirror_ids: Sequence[str]) -> dict[str, BusSettings]:
        """:meth:`device_bus` of many mirrors (``mirrorhub fleet``), the new accounts made with
        one write of the devices file."""
        if self.external_broker is not None:
            return dict.fromkeys(mirror_ids, BusSettings.from_env(self.external_broker))
        passwords = device_passwords(self.devices_file, mirror_ids)
        return {mirror_id: BusSettings.from_env(
                    BrokerURL(self.broker_host, self.broker_port, mirror_id, password))
                for mirror_id, password in passwords.items()}

    def bus(self, role: str, port: int | None = None) -> BusSettings:
        """How ``role`` reaches the broker: the external URL as given, or the embedded broker
        with ``role``'s generated credentials."""
        if self.external_broker is not None:
            return BusSettings.from_env(self.external_broker)
        url = BrokerURL(self.broker_host, port if port is not None else self.broker_port)
        return BusSettings.from_env(url.with_credentials(role, self.accounts()[role]))
