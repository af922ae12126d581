"""TLS for the Bus: the client's SSL context, and one clear line for each way TLS fails.

paho-mqtt makes the TLS connection (in the thread that runs its blocking ``connect``); what is
added here sits at the ``ssl`` module's boundary. The context verifies like
``ssl.create_default_context()`` (the broker's certificate and its host name), and its socket
class (``SSLContext.sslsocket_class``, made for overriding) remembers the TLS error a read
raised, which paho only logs: a TLS 1.3 broker refuses a missing client certificate after the
handshake, so that refusal shows on the first read, not in ``connect``.
"""

from __future__ import annotations

import contextlib
import select
import socket
import ssl
from pathlib import Path
from typing import Any

from broker.protocol import MqttError, TlsRefused
from broker.settings import BusSettings
from schemas.errors import ConfigError

# OpenSSL's X509_V_ERR_* codes, as ssl.SSLCertVerificationError.verify_code carries them.
_UNTRUSTED = {2, 18, 19, 20, 21}  # no issuer, self-signed (leaf or chain), unverifiable
_EXPIRED, _NOT_YET_VALID = 10, 9
_WRONG_HOST = {62, 64}  # host name mismatch, IP address mismatch

# Alerts from a broker that asked for a client certificate (OpenSSL's reason names).
_NO_CLIENT_CERT = ("CERTIFICATE_REQUIRED", "HANDSHAKE_FAILURE")
_CLIENT_CERT_REFUSED = ("UNKNOWN_CA", "BAD_CERTIFICATE", "CERTIFICATE_UNKNOWN",
                        "CERTIFICATE_EXPIRED", "DECRYPT_ERROR")


# How long a TLS 1.3 client waits after its handshake for the broker's first records.
SETTLE_SECONDS = 0.25


def _settle(sock: ssl.SSLSocket) -> None:
    """Read what a TLS 1.3 broker sends right after the handshake, before anything is written.

    In TLS 1.3 a broker judges the client's certificate (or its absence) only after the
    client's handshake is done, and answers with session tickets or with an alert. Were the
    MQTT CONNECT written first, a broker that refuses closes with it unread, the kernel sends a
    reset, and the reset can overtake the alert: the client then sees "connection reset", not
    why. So the client waits, at most :data:`SETTLE_SECONDS`, for those first records; an
    alert raises here (recorded by the socket's ``recv``), tickets are taken in silence. An
    MQTT broker never speaks first, so no application byte can be read by this."""
    timeout = sock.gettimeout()
    try:
        readable, _, _ = select.select([sock], [], [], SETTLE_SECONDS)
        if readable:
            sock.setblocking(False)
            with contextlib.suppress(ssl.SSLWantReadError):
                sock.recv(1)
    finally:
        sock.settimeout(timeout)


class TlsWatch:
    """The TLS side of one Bus's connections: :meth:`context` for paho, the TLS error the last
    read raised in :attr:`failure`, and :meth:`explain` for the log and the user."""

    def __init__(self, settings: BusSettings) -> None:
        self.settings = settings
        self.failure: ssl.SSLError | None = None  # reset by the Bus before each connection

    def context(self) -> ssl.SSLContext:
        """A verifying client context; :class:`~schemas.errors.ConfigError` when a CA,
        certificate or key file cannot be loaded."""
        settings = self.settings
        try:
            context = ssl.create_default_context(
                cafile=str(settings.ca_file) if settings.ca_file else None)
        except (ssl.SSLError, OSError) as exc:
            raise ConfigError(f"MIRRORHUB_BROKER_CA ({settings.ca_file}): no CA certificate "
                              f"could be loaded from it: {exc}") from exc
        if settings.cert_file is not None:
            try:
                context.load_cert_chain(settings.cert_file, settings.key_file)
            except (ssl.SSLError, OSError) as exc:
                raise ConfigError(
                    f"MIRRORHUB_BROKER_CERT/KEY ({settings.cert_file}, {settings.key_file}): "
                    f"not a certificate and its private key: {exc}") from exc
        context.sslsocket_class = self._socket_class()
        return context

    def _socket_class(self) -> type[ssl.SSLSocket]:
        watch = self

        class WatchedSocket(ssl.SSLSocket):
            def do_handshake(self, block: bool = False) -> None:
                super().do_handshake(block)
                if self.version() == "TLSv1.3":
                    _settle(self)

            def recv(self, buflen: int = 1024, flags: int = 0) -> bytes:
                try:
                    return super().recv(buflen, flags)
                except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                    raise
                except ssl.SSLError as exc:
                    watch.failure = exc
                    raise

        return WatchedSocket

    def refusal(self, exc: BaseException) -> MqttError | None:
        """What a failed ``connect`` means, as the error to raise instead of ``exc``: a final
        :class:`TlsRefused` saying why, a passing :class:`MqttError` for a handshake cut off,
        or None when ``exc`` has nothing to do with TLS."""
        explained = self.explain(exc)
        if explained is not None:
            return TlsRefused(explained)
        if isinstance(exc, (ConnectionResetError, ssl.SSLEOFError)):
            # Not final: a broker that is starting may do the same.
            url = self.settings.url
            return MqttError(f"the TLS handshake was cut off (is {url.host}:{url.port} a TLS "
                             "port? a plain one wants mqtt:// or ws://)")
        return None

    def explain(self, exc: BaseException) -> str | None:
        """One line saying what went wrong with TLS, naming the setting that fixes it; None when
        ``exc`` is no TLS failure."""
        if isinstance(exc, ssl.SSLCertVerificationError):
            return self._certificate(exc)
        if isinstance(exc, ssl.SSLError):
            return self._alert(exc)
        return None

    def _certificate(self, exc: ssl.SSLCertVerificationError) -> str:
        url, ca = self.settings.url, self.settings.ca_file
        code = exc.verify_code
        if code in _UNTRUSTED:
            if ca is not None:
                return (f"TLS: the broker's certificate is not signed by the CA in "
                        f"MIRRORHUB_BROKER_CA ({ca})")
            return ("TLS: the broker's certificate is not signed by a trusted CA (set "
                    "MIRRORHUB_BROKER_CA to the file of the CA that signed it)")
        if code in _WRONG_HOST:
            names = certificate_names(url.host, url.port, ca)
            listed = ", ".join(names) if names else "other names"
            return (f"TLS: the broker's certificate is for {listed}, not {url.host} (name one "
                    "of those in MIRRORHUB_BROKER_URL)")
        if code == _EXPIRED:
            return "TLS: the broker's certificate has expired"
        if code == _NOT_YET_VALID:
            return "TLS: the broker's certificate is not valid yet (check this host's clock)"
        return f"TLS: the broker's certificate was refused: {exc.verify_message}"

    def _alert(self, exc: ssl.SSLError) -> str:
        reason = str(exc.reason or exc)
        url = self.settings.url
        if reason == "WRONG_VERSION_NUMBER":
            return (f"TLS: {url.host}:{url.port} does not answer TLS (a plain MQTT port? "
                    "then use mqtt:// or ws://)")
        if self.settings.cert_file is None and any(name in reason for name in _NO_CLIENT_CERT):
            return ("TLS: the broker wants a client certificate (set MIRRORHUB_BROKER_CERT "
                    "and MIRRORHUB_BROKER_KEY)")
        if any(name in reason for name in _CLIENT_CERT_REFUSED + _NO_CLIENT_CERT):
            return (f"TLS: the broker refused the client certificate in MIRRORHUB_BROKER_CERT "
                    f"({self.settings.cert_file}): {reason.lower().replace('_', ' ')}")
        return f"TLS: the handshake with the broker failed: {reason.lower().replace('_', ' ')}"


def certificate_names(host: str, port: int, ca_file: Path | None) -> list[str]:
    """The names (DNS and IP) that the certificate at ``host:port`` is for, verified against
    the CAs of ``ca_file`` (or the system's) but not against ``host``; empty when that fails
    too. Blocking: call it off the event loop."""
    probe = ssl.create_default_context(cafile=str(ca_file) if ca_file else None)
    probe.check_hostname = False
    try:
        with (socket.create_connection((host, port), timeout=5) as raw,
              probe.wrap_socket(raw) as tls):
            cert: dict[str, Any] = tls.getpeercert() or {}
    except (OSError, ValueError):
        return []
    names = cert.get("subjectAltName", ())
    return [value for kind, value in names if kind in ("DNS", "IP Address")]

