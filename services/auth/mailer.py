"""Sending mail: over SMTP when ``MIRRORHUB_SMTP_URL`` is set, else to the log and an outbox.

``smtp://host:25`` sends in the clear, ``smtp+starttls://`` upgrades with STARTTLS and
``smtps://`` speaks TLS from the start; ``user:password@`` in the URL logs in.
The outbox (``{data}/outbox/``) holds one ``.eml`` file per message, for a developer without a
mail server.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

import aiosmtplib

from schemas.errors import ConfigError

log = logging.getLogger(__name__)


class Mailer(Protocol):
    async def send(self, message: EmailMessage) -> None: ...


class SmtpMailer:
    def __init__(self, url: str, timeout: float = 10.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtp+starttls", "smtps"):
            raise ConfigError("MIRRORHUB_SMTP_URL must start with smtp://, smtp+starttls:// "
                              "or smtps://")
        self.host = parts.hostname or "localhost"
        self.port = parts.port or {"smtp": 25, "smtp+starttls": 587, "smtps": 465}[parts.scheme]
        self.username = unquote(parts.username) if parts.username else None
        self.password = unquote(parts.password) if parts.password else None
        self.use_tls = parts.scheme == "smtps"
        self.start_tls = parts.scheme == "smtp+starttls"
        self.timeout = timeout

    async def send(self, message: EmailMessage) -> None:
        await aiosmtplib.send(
            message, hostname=self.host, port=self.port, username=self.username,
            password=self.password, use_tls=self.use_tls, start_tls=self.start_tls,
            timeout=self.timeout,
        )


class OutboxMailer:
    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox

    async def send(self, message: EmailMessage) -> None:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        path = self.outbox / f"{stamp}-{uuid.uuid4().hex[:8]}.eml"
        await asyncio.to_thread(self._write, path, message.as_bytes())
        log.warning("no SMTP configured: mail to %s written to %s\n%s",
                    message["To"], path, message.get_content())

    def _write(self, path: Path, data: bytes) -> None:
        self.outbox.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)


def make_mailer(smtp_url: str | None, outbox: Path) -> Mailer:
    return SmtpMailer(smtp_url) if smtp_url else OutboxMailer(outbox)
