"""Running the auth service: its database, its keys, its mailer and its handler table."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

from broker.service import service_bus
from broker.settings import BusSettings
from services.auth.accounts import Accounts
from services.auth.admins import Admins
from services.auth.audit import Audit
from services.auth.config import AuthSettings
from services.auth.deletions import Deletions
from services.auth.handlers import AUTH
from services.auth.mailer import make_mailer
from services.auth.passwords import PasswordHasher
from services.auth.profiles import Profiles
from services.auth.sessions import Sessions
from services.auth.throttle import Limits, Throttle
from services.auth.tokens import Keyring, TokenIssuer
from services.database import open_database, server_away


@contextlib.asynccontextmanager
async def run_auth(bus_settings: BusSettings, settings: AuthSettings) -> AsyncIterator[Accounts]:
    """Serve ``svc/auth/*`` until the context exits."""
    keyring = (
        Keyring.parse(settings.jwt_keys)
        if settings.jwt_keys
        else Keyring.load_or_create(settings.data_dir / "auth" / "jwt_keys.json")
    )
    tokens = TokenIssuer(keyring, settings.token_ttl)
    bus = service_bus(bus_settings, "auth")
    hasher = PasswordHasher(settings.argon2_memory_kib, settings.argon2_time_cost)
    throttle = Throttle(Limits(settings.login_max_failures,
                               settings.login_max_failures_per_address,
                               timedelta(seconds=settings.login_window)))
    accounts = Accounts(
        hasher,
        tokens,
        make_mailer(settings.smtp_url, settings.data_dir / "outbox"),
        throttle,
        reset_ttl=settings.reset_ttl,
        mail_from=settings.mail_from,
        reset_mails_per_hour=settings.reset_mails_per_hour,
    )
    tombstones = Deletions(timedelta(days=settings.deletion_retention_days))
    admins = Admins(hasher, tokens, throttle)
    async with (
        open_database(settings.database_url, "auth", "services.auth.models",
                      "services.auth.migrations"),
        AUTH.serve(bus, accounts, Sessions(tokens, bus, tombstones),
                   Profiles(hasher, tokens, bus), tombstones, admins, Audit(admins),
                   unavailable=server_away),
    ):
        yield accounts
