"""``MIRRORHUB_BROKER_URL`` in each of its forms, and the TLS and MQTT 5 settings beside it."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.settings import BrokerURL, BusSettings
from mirrorhub.settings import Settings
from schemas.errors import ConfigError


@pytest.mark.parametrize(("url", "scheme", "port", "path", "shown"), [
    ("mqtt://u:p@broker:1884", "mqtt", 1884, "/mqtt", "mqtt://u@broker:1884"),
    ("tcp://broker", "mqtt", 1883, "/mqtt", "mqtt://broker:1883"),
    ("mqtts://u:p@broker", "mqtts", 8883, "/mqtt", "mqtts://u@broker:8883"),
    ("ws://broker:8080", "ws", 8080, "/mqtt", "ws://broker:8080/mqtt"),
    ("wss://u:p%40ss@broker/ws/mqtt", "wss", 443, "/ws/mqtt", "wss://u@broker:443/ws/mqtt"),
    ("ws://[::1]:9001/", "ws", 9001, "/", "ws://[::1]:9001/"),
])
def test_every_scheme_parses_and_prints_without_the_password(
    url: str, scheme: str, port: int, path: str, shown: str,
) -> None:
    parsed = BrokerURL.parse(url)
    assert (parsed.scheme, parsed.port, parsed.path, str(parsed)) == (scheme, port, path, shown)
    assert "p@ss" not in str(parsed) and ":p@" not in str(parsed)
    assert BrokerURL.parse(parsed.to_url()) == parsed  # handed to another process intact
    assert parsed.tls is (scheme in ("mqtts", "wss"))
    assert parsed.websockets is scheme.startswith("ws")


def test_the_password_survives_to_url() -> None:
    parsed = BrokerURL.parse("wss://mirror:p%40ss%2Fw@broker:9443/mqtt")
    assert parsed.password == "p@ss/w"
    assert parsed.to_url() == "wss://mirror:p%40ss%2Fw@broker:9443/mqtt"


@pytest.mark.parametrize(("url", "error"), [
    ("http://broker", "must start with mqtt://, mqtts://, ws:// or wss://"),
    ("mqtt://broker:99999", "bad port"),
    ("mqtts://broker/mqtt", "only means something in ws:// and wss://"),
])
def test_bad_urls_are_refused(url: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        BrokerURL.parse(url)


def test_tls_files_and_mqtt5_from_the_environment(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ca, cert = tmp_path / "ca.pem", tmp_path / "client.pem"
    ca.write_text("x")
    cert.write_text("x")
    tls = BrokerURL.parse("mqtts://broker")
    monkeypatch.setenv("MIRRORHUB_BROKER_CA", str(ca))
    monkeypatch.setenv("MIRRORHUB_BROKER_CERT", str(cert))
    monkeypatch.setenv("MIRRORHUB_BROKER_MQTT5", "1")
    monkeypatch.setenv("MIRRORHUB_SESSION_EXPIRY", "3600")
    settings = BusSettings.from_env(tls)
    assert (settings.ca_file, settings.cert_file, settings.key_file) == (ca, cert, None)
    assert settings.mqtt5 and settings.session_expiry == 3600
    # A plain URL (the embedded broker's, for the services of mirrorhub up) ignores them...
    assert BusSettings.from_env(BrokerURL.parse("mqtt://broker")).ca_file is None
    # ...but as the URL of the broker to use, it is a mistake said at start-up.
    monkeypatch.setenv("MIRRORHUB_BROKER_URL", "mqtt://broker")
    with pytest.raises(ConfigError, match="MIRRORHUB_BROKER_CA and MIRRORHUB_BROKER_CERT are "
                       "for a TLS broker, but MIRRORHUB_BROKER_URL is mqtt://broker:1883"):
        Settings.from_env()
    monkeypatch.setenv("MIRRORHUB_BROKER_URL", "wss://broker/mqtt")
    assert Settings.from_env().external_broker == BrokerURL.parse("wss://broker:443/mqtt")
    with pytest.raises(ConfigError, match="is for mqtts:// and wss:// brokers"):
        BusSettings(BrokerURL.parse("mqtt://broker"), ca_file=ca)
    monkeypatch.setenv("MIRRORHUB_BROKER_KEY", str(tmp_path / "missing.key"))
    with pytest.raises(ConfigError, match="MIRRORHUB_BROKER_KEY: no such file"):
        BusSettings.from_env(tls)
    monkeypatch.delenv("MIRRORHUB_BROKER_KEY")
    monkeypatch.setenv("MIRRORHUB_BROKER_MQTT5", "maybe")
    with pytest.raises(ConfigError, match="MIRRORHUB_BROKER_MQTT5 must be 1 or 0"):
        BusSettings.from_env(tls)
    monkeypatch.delenv("MIRRORHUB_BROKER_MQTT5")
    monkeypatch.delenv("MIRRORHUB_BROKER_CERT")
    monkeypatch.setenv("MIRRORHUB_BROKER_KEY", str(cert))
    with pytest.raises(ConfigError, match="MIRRORHUB_BROKER_KEY needs MIRRORHUB_BROKER_CERT"):
        BusSettings.from_env(tls)


def test_defaults_are_mqtt311_with_a_day_for_persistent_sessions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("MIRRORHUB_BROKER_CA", "MIRRORHUB_BROKER_CERT", "MIRRORHUB_BROKER_KEY",
                 "MIRRORHUB_BROKER_MQTT5", "MIRRORHUB_SESSION_EXPIRY"):
        monkeypatch.delenv(name, raising=False)
    settings = BusSettings.from_env(BrokerURL())
    assert not settings.mqtt5 and settings.session_expiry == 86_400
    assert settings.ca_file is None and str(settings.url) == "mqtt://127.0.0.1:1883"


@pytest.mark.parametrize("name", ["MIRRORHUB_BROKER_ANONYMOUS", "MIRRORHUB_REQUIRE_TOKEN",
                                  "MIRRORHUB_COOKIE_SECURE"])
def test_a_yes_or_no_setting_is_1_or_0_and_nothing_else(name: str,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MIRRORHUB_BROKER_URL", raising=False)
    field = {"MIRRORHUB_BROKER_ANONYMOUS": "allow_anonymous",
             "MIRRORHUB_REQUIRE_TOKEN": "require_token",
             "MIRRORHUB_COOKIE_SECURE": "cookie_secure"}[name]
    for raw, expected in (("1", True), ("Yes", True), ("0", False), ("no", False)):
        monkeypatch.setenv(name, raw)
        assert getattr(Settings.from_env(), field) is expected
    monkeypatch.setenv(name, "on")  # was read as off, silently: a cookie sent over plain HTTP
    with pytest.raises(ConfigError, match=f"{name} must be 1 or 0, got 'on'"):
        Settings.from_env()
