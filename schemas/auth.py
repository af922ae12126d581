"""Payloads and topics of the auth service (``svc/auth/*``).

Error codes the auth service adds to :class:`schemas.envelope.ErrorCode`:

- ``login_failed``: unknown user or wrong password (never says which);
- ``user_exists``: the username is taken;
- ``user_not_found``: no user with that username and email;
- ``token_invalid``: a bearer or reset token is malformed, forged, expired, revoked or used.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from schemas.names import Username
from schemas.topics import Operation

PASSWORD_MAX = 1024
EMAIL_MAX = 254
TOKEN_MAX = 4096


def _email(value: str) -> str:
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain.strip(".") or " " in value:
        raise ValueError("is not an email address")
    return value


Password = Annotated[str, StringConstraints(min_length=1, max_length=PASSWORD_MAX)]
Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=EMAIL_MAX),
    AfterValidator(_email),
]
Token = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=TOKEN_MAX)]


class AuthError(StrEnum):
    """Error codes specific to the auth service."""

    LOGIN_FAILED = "login_failed"
    USER_EXISTS = "user_exists"
    USER_NOT_FOUND = "user_not_found"
    TOKEN_INVALID = "token_invalid"


class _Strict(BaseModel):
    """Requests: wrong JSON types are refused, not coerced; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RegisterRequest(_Strict):
    username: Username
    password: Password
    email: Email


class RegisterReply(_Reply):
    username: str


class LoginRequest(_Strict):
    username: Username
    password: Password


class LoginReply(_Reply):
    username: str
    token: str
    expires_at: datetime


class ResetRequest(_Strict):
    """Ask for a password reset: a single-use token is mailed to the account's address."""

    username: Username
    email: Email


class ResetReply(_Reply):
    message: str


class ResetConfirmRequest(_Strict):
    """Set a new password with the token from the reset mail."""

    token: Token
    password: Password


class ResetConfirmReply(_Reply):
    username: str


class VerifyRequest(_Strict):
    token: Token


class VerifyReply(_Reply):
    username: str
    user_id: int
    expires_at: datetime


class LookupRequest(_Strict):
    """Which of ``usernames`` have an account; for services that take usernames from clients."""

    usernames: list[Username] = Field(min_length=1, max_length=16)


class LookupReply(_Reply):
    found: list[str]  # the usernames that exist, as stored


AUTH_REGISTER = Operation(
    "svc/auth/register", RegisterRequest, "Create a user account.", reply=RegisterReply
)
AUTH_LOGIN = Operation(
    "svc/auth/login", LoginRequest, "Check a password and issue a JWT.", reply=LoginReply
)
AUTH_RESET = Operation(
    "svc/auth/reset_password",
    ResetRequest,
    "Mail a single-use reset token to the user's address.",
    reply=ResetReply,
)
AUTH_RESET_CONFIRM = Operation(
    "svc/auth/reset_password/confirm",
    ResetConfirmRequest,
    "Set a new password with a reset token.",
    reply=ResetConfirmReply,
)
AUTH_VERIFY = Operation(
    "svc/auth/verify", VerifyRequest, "Check a bearer token; for the bridge and other services.",
    reply=VerifyReply,
)

AUTH_LOOKUP = Operation(
    "svc/auth/lookup", LookupRequest, "Which usernames have an account; for other services.",
    reply=LookupReply,
)
