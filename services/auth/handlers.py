"""The auth service's table: one row per ``svc/auth/*`` operation."""

from __future__ import annotations

from broker.service import Handler
from schemas.auth import (
    AUTH_LOGIN,
    AUTH_LOOKUP,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AUTH_VERIFY,
)
from services.auth.accounts import Accounts


def handlers(accounts: Accounts) -> list[Handler]:
    return [
        Handler(AUTH_REGISTER, accounts.register),
        Handler(AUTH_LOGIN, accounts.login),
        Handler(AUTH_VERIFY, accounts.verify),
        Handler(AUTH_LOOKUP, accounts.lookup),
        Handler(AUTH_RESET, accounts.reset_password),
        Handler(AUTH_RESET_CONFIRM, accounts.confirm_reset),
    ]
