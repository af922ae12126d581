"""The MQTT vocabulary that :mod:`broker.connection` and :class:`broker.client.Bus` share: the
connection's errors, the Last Will, and topic matching."""

from __future__ import annotations

from dataclasses import dataclass

from paho.mqtt.reasoncodes import ReasonCode

# CONNACK reasons that retrying will not change: protocol version, client id, credentials.
FINAL_REFUSALS = {0x84, 0x85, 0x86, 0x87, 0x8C}


class MqttError(Exception):
    """The connection failed, broke or could not do what was asked."""


class ConnectRefused(MqttError):
    """The broker answered CONNACK with a failure; :attr:`final` when retrying cannot help."""

    def __init__(self, reason: ReasonCode, *, mqtt5: bool) -> None:
        text = str(reason).lower()
        if reason.value == 0x84:
            text += " (the broker does not speak MQTT 5: unset MIRRORHUB_BROKER_MQTT5)" \
                if mqtt5 else ""
        super().__init__(f"connection refused: {text}")
        self.final = reason.value in FINAL_REFUSALS
        self.credentials = reason.value in (0x86, 0x87)  # bad user name or password; not allowed


class TlsRefused(MqttError):
    """TLS failed in a way that only a change of settings fixes (the message says which)."""


class SubscriptionRefused(MqttError):
    """The broker refused a subscription: this account may not read that filter."""


@dataclass(frozen=True)
class Will:
    """The Last Will: what the broker publishes when this client vanishes without DISCONNECT."""

    topic: str
    payload: bytes | str
    qos: int = 0
    retain: bool = False


def topic_matches(topic_filter: str, topic: str) -> bool:
    """Whether ``topic`` matches ``topic_filter`` (``+``, ``#``, and ``$share/<group>/``).

    The same answers as paho's ``topic_matches_sub`` (a test holds them to it), in a fifth of
    its time: it runs for every subscription on every message a Bus receives.
    """
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
