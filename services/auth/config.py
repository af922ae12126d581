"""Settings of the auth service from ``MIRRORHUB_*`` variables (docs/operations.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from services.environment import number


@dataclass(frozen=True)
class AuthSettings:
    data_dir: Path
    database_url: str
    jwt_keys: str | None
    token_ttl: int
    reset_ttl: int
    smtp_url: str | None
    mail_from: str
    argon2_memory_kib: int
    argon2_time_cost: int
    reset_mails_per_hour: int = 3  # reset mails one account may be sent in an hour
    # Throttling (services/auth/throttle.py): failures of one username, and from one client
    # address, within the window (seconds) before its logins (or resets) are refused.
    login_max_failures: int = 5
    login_max_failures_per_address: int = 50
    login_window: float = 900.0
    # How long tombstones of deleted accounts are kept for services catching up (deletions.py).
    deletion_retention_days: int = 30

    @classmethod
    def from_env(cls, data_dir: Path) -> AuthSettings:
        env = os.environ
        return cls(
            data_dir=data_dir,
            database_url=env.get("MIRRORHUB_AUTH_DATABASE_URL")
            or f"sqlite://{data_dir / 'auth.sqlite3'}",
            jwt_keys=env.get("MIRRORHUB_JWT_KEYS") or None,
            token_ttl=number("MIRRORHUB_TOKEN_TTL", 86400, 60, 90 * 86400),
            reset_ttl=number("MIRRORHUB_RESET_TTL", 1800, 60, 7 * 86400),
            smtp_url=env.get("MIRRORHUB_SMTP_URL") or None,
            mail_from=env.get("MIRRORHUB_MAIL_FROM") or "mirrorhub@localhost",
            argon2_memory_kib=number("MIRRORHUB_ARGON2_MEMORY_KIB", 19456, 8, 4 * 1024 * 1024),
            argon2_time_cost=number("MIRRORHUB_ARGON2_TIME_COST", 2, 1, 100),
            reset_mails_per_hour=number("MIRRORHUB_RESET_MAILS_PER_HOUR", 3, 1, 1000),
            login_max_failures=number("MIRRORHUB_LOGIN_MAX_FAILURES", 5, 1, 1000),
            login_max_failures_per_address=number("MIRRORHUB_LOGIN_MAX_FAILURES_PER_ADDRESS",
                                                  50, 1, 1_000_000),
            login_window=number("MIRRORHUB_LOGIN_WINDOW", 900.0, 1.0, 7 * 86400.0),
            deletion_retention_days=number("MIRRORHUB_DELETION_RETENTION_DAYS", 30, 1, 3650),
        )
