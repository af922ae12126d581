"""Payloads and topics of the auth service (``svc/auth/*``).

Error codes the auth service adds to :class:`schemas.envelope.ErrorCode`:

- ``login_failed``: unknown user or wrong password (never says which);
- ``user_exists``: the username is taken;
- ``user_not_found``: no user with that username and email;
- ``token_invalid``: a bearer or reset token is malformed, forged, expired, revoked or used;
  for a bearer token the error's ``reason`` says which (:class:`TokenReason`);
- ``admin_required``: a face admin account (schemas/admins.py) asked for without an admin's
  token once an admin exists;

and answers the common ``throttled`` (with ``retry_after``) to a login or password reset of a
username, or from a client address, with too many recent failures (services/auth/throttle.py).

One user record serves every API family: ``username`` and ``password`` always, and optional
``email`` (seed 000's ``/register/user`` requires it: the bridge checks that), ``first_name``,
``last_name`` and ``profile`` (seed 003) and ``fullname`` (seed 004).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from schemas.names import Username, printable
from schemas.topics import Operation, Topic

PASSWORD_MAX = 1024
EMAIL_MAX = 254
TOKEN_MAX = 4096
NAME_MAX = 128
PROFILE_MAX = 255


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
# A person's name as they write it (``fullname``, ``first_name``, ``last_name``).
PersonName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=NAME_MAX),
    AfterValidator(printable),
]
# Seed 003's ``profile``: the key of an uploaded picture, never a path.
ProfileKey = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=PROFILE_MAX),
    AfterValidator(printable),
]


class AuthError(StrEnum):
    """Error codes specific to the auth service."""

    LOGIN_FAILED = "login_failed"
    USER_EXISTS = "user_exists"
    USER_NOT_FOUND = "user_not_found"
    TOKEN_INVALID = "token_invalid"
    ADMIN_REQUIRED = "admin_required"  # an admin exists: only an admin may make another


class TokenReason(StrEnum):
    """Why a bearer token is ``token_invalid``: the ``reason`` of the error.

    The message of a ``malformed`` one is PyJWT's own account of it (``Not enough segments``,
    ``Invalid header padding``...), so that a caller may show the library's words.
    """

    MALFORMED = "malformed"  # not a JWT, or not one of ours (claims missing or wrong)
    SIGNATURE = "signature"  # the signature does not verify, or its key is unknown
    EXPIRED = "expired"  # past its ``exp``
    REVOKED = "revoked"  # logged out, its password changed since, or its account is gone


# The client address a login or reset came from (the bridge's peer, docs/operations.md), for
# the per-address limit: an IPv6 address with a zone fits.
Address = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64)]


class _Strict(BaseModel):
    """Requests: wrong JSON types are refused, not coerced; unknown fields are ignored."""

    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class _Reply(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class RegisterRequest(_Strict):
    username: Username
    password: Password
    email: Email | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    profile: ProfileKey | None = None
    fullname: PersonName | None = None


class RegisterReply(_Reply):
    username: str


class LoginRequest(_Strict):
    username: Username
    password: Password
    address: Address | None = None  # the client's; None: only the per-username limit applies


class LoginReply(_Reply):
    username: str
    token: str
    expires_at: datetime
    expires_in: int  # the token's lifetime in seconds (a cookie's Max-Age)


class ResetRequest(_Strict):
    """Ask for a password reset: a single-use token is mailed to the account's address."""

    username: Username
    email: Email
    address: Address | None = None  # as for LoginRequest


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
    fullname: str | None = None  # as registered (seed 004); None for the other families


class LogoutRequest(_Strict):
    """Revoke one token (the one given) until it would have expired."""

    token: Token


class LogoutReply(_Reply):
    username: str


class DeleteUserRequest(_Strict):
    """Delete the account a token belongs to; every token of it stops verifying."""

    token: Token


class DeleteUserReply(_Reply):
    username: str


class UserRequest(_Strict):
    """One account's record, for the holder of ``token``: their own (``id`` None or theirs) in
    full, anybody else's public part only (:class:`UserRecord`)."""

    token: Token
    id: int | None = Field(default=None, ge=1, le=2**31 - 1)


class UserRecord(_Reply):
    """An account as seed 003 shows it. For anybody but its owner the private fields
    (``first_name``, ``last_name``) are None. No password nor hash, ever."""

    id: int
    username: str
    first_name: str | None = None
    last_name: str | None = None
    profile: str | None = None


class UpdateUserRequest(_Strict):
    """Change the account ``token`` belongs to: each field given replaces the stored one.

    A new ``password`` revokes every other token of the account; the one sent here keeps
    working (auth remembers its ``jti``). A new ``username`` must be free and is announced on
    ``events/auth/user_renamed``."""

    token: Token
    username: Username | None = None
    password: Password | None = None
    first_name: PersonName | None = None
    last_name: PersonName | None = None
    profile: ProfileKey | None = None


class UpdateUserReply(_Reply):
    username: str  # as it is now
    changed: list[str]  # the fields whose value changed, sorted


SEQ_MAX = 2**31 - 1  # sequence numbers are 32-bit integer columns
DELETIONS_PAGE_MAX = 1000


class UserDeleted(BaseModel):
    """An account is gone; services holding data of its user remove it.

    The same record is the account's tombstone, kept by auth for ``svc/auth/deletions``: ``seq``
    numbers the deletions from 1, without gaps, in the order they were committed, so that a
    service that missed the event (it was down) finds it by asking for what came after the last
    ``seq`` it applied."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    username: str
    user_id: int
    seq: int
    deleted_at: datetime


class DeletionsRequest(_Strict):
    """The tombstones after ``after`` (0: from the first kept), oldest first."""

    after: int = Field(default=0, ge=0, le=SEQ_MAX)
    limit: int = Field(default=100, ge=1, le=DELETIONS_PAGE_MAX)


class DeletionsReply(_Reply):
    """``deletions`` in ``seq`` order; ``last_seq`` is the latest deletion's ``seq`` (0 before
    the first). When the first one returned is not ``after + 1`` (or none is returned while
    ``last_seq > after``) the tombstones between were purged, being older than auth keeps
    them: the caller missed those deletions for good."""

    deletions: list[UserDeleted]
    last_seq: int


class UserRenamed(BaseModel):
    """An account's username changed (seed 003's ``PUT /api/user``); services holding data
    under ``old_username`` move it to ``new_username``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    user_id: int
    old_username: str
    new_username: str


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

AUTH_LOGOUT = Operation(
    "svc/auth/logout", LogoutRequest, "Revoke one token (logging out).", reply=LogoutReply
)
AUTH_DELETE_USER = Operation(
    "svc/auth/delete_user", DeleteUserRequest,
    "Delete the account a token belongs to, revoking all its tokens.", reply=DeleteUserReply,
)
AUTH_USER = Operation(
    "svc/auth/user", UserRequest,
    "An account's record: the token's own in full, another's public fields.", reply=UserRecord,
)
AUTH_UPDATE_USER = Operation(
    "svc/auth/update_user", UpdateUserRequest,
    "Change the account a token belongs to (username, password, names, profile).",
    reply=UpdateUserReply,
)
AUTH_DELETIONS = Operation(
    "svc/auth/deletions", DeletionsRequest,
    "Deleted accounts after a sequence number, oldest first; for services catching up.",
    reply=DeletionsReply,
)
AUTH_USER_DELETED = Topic(
    "events/auth/user_deleted", UserDeleted, "An account was deleted (svc/auth/delete_user)."
)
AUTH_USER_RENAMED = Topic(
    "events/auth/user_renamed", UserRenamed,
    "An account's username changed (PUT /api/user); its data moves to the new name.",
)
