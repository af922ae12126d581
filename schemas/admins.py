"""Payloads and topics of the face admin accounts (seed 002's ``/jwt/...``), served by auth.

Admins are accounts of their own, apart from users: another table, and tokens of another issuer
(``mirrorhub-auth-admin``), so that an admin token verifies nowhere a user token is wanted and
a user token nowhere an admin token is (services/auth/admins.py). Errors are auth's
(:class:`schemas.auth.AuthError`): ``login_failed``, ``user_exists`` (the admin name is
taken), ``token_invalid`` (with its ``reason``), ``admin_required`` (registering once an admin
exists, without an admin's token), and the common ``throttled``.
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict

from schemas.auth import LoginReply, LoginRequest, LogoutReply, LogoutRequest, Password, Token
from schemas.names import Username
from schemas.topics import Operation


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class AdminRegisterRequest(_Strict):
    """Create an admin. Open while no admin exists (the first one); after that ``token`` must
    be an admin's."""

    username: Username
    password: Password
    token: Token | None = None


class AdminRegisterReply(_Reply):
    username: str
    first: bool  # the first admin, made without a token


class AdminLoginRequest(LoginRequest):
    """As a user's login: a name, a password and the client's address (for the throttle)."""


class AdminLoginReply(LoginReply):
    """As a user's login: the token (of the admin issuer) and when it expires."""


class AdminVerifyRequest(_Strict):
    token: Token


class AdminVerifyReply(_Reply):
    username: str
    admin_id: int
    expires_at: datetime


class AdminLogoutRequest(LogoutRequest):
    """Revoke one admin token (the admin page's logout) until it would have expired."""


class AdminLogoutReply(LogoutReply):
    """The admin whose token it was."""


AUTH_ADMIN_REGISTER = Operation(
    "svc/auth/admin_register", AdminRegisterRequest,
    "Create a face admin account (open until the first exists).", reply=AdminRegisterReply,
)
AUTH_ADMIN_LOGIN = Operation(
    "svc/auth/admin_login", AdminLoginRequest, "Check an admin's password and issue an admin JWT.",
    reply=AdminLoginReply,
)
AUTH_ADMIN_VERIFY = Operation(
    "svc/auth/admin_verify", AdminVerifyRequest, "Check an admin's bearer token.",
    reply=AdminVerifyReply,
)
AUTH_ADMIN_LOGOUT = Operation(
    "svc/auth/admin_logout", AdminLogoutRequest, "Revoke one admin token (logging out).",
    reply=AdminLogoutReply,
)
