"""Face admin accounts (seed 002's ``/jwt/register`` and ``/jwt/login``): apart from users.

Admins live in ``auth_admin``, not ``auth_user``, and their tokens carry the issuer
:data:`~services.auth.tokens.ADMIN_ISSUER`: :meth:`TokenIssuer.decode` refuses a token of the
other issuer, so an admin token is ``token_invalid`` wherever a user token is checked and a user
token wherever an admin token is, with no claim to forget to look at.

Registering is open while no admin exists, so that a fresh install can make its first one over
HTTP (``mirrorhub admin add`` does it from the command line, with no token). Two first
registrations racing both insert, then count: the later one (the higher id) finds the other and
takes itself back, so there is one first admin. Logins are throttled as users' are
(services/auth/throttle.py), under the action ``admin``.
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError

from schemas.admins import (
    AdminLoginReply,
    AdminLoginRequest,
    AdminLogoutReply,
    AdminLogoutRequest,
    AdminRegisterReply,
    AdminRegisterRequest,
    AdminVerifyReply,
    AdminVerifyRequest,
)
from schemas.audit import AuditAction
from schemas.auth import AuthError
from schemas.errors import ServiceError
from services.auth.accounts import checked_login
from services.auth.audit_log import record
from services.auth.config import AuthSettings
from services.auth.models import Admin, RevokedToken
from services.auth.passwords import PasswordHasher
from services.auth.sessions import revoked
from services.auth.throttle import Throttle
from services.auth.tokens import ADMIN_ISSUER, Claims, TokenIssuer
from services.database import open_database

ADMIN_REQUIRED = "an admin exists already: only an admin (with Authorization: Bearer) may add one"
TAKEN = "admin already exists"


async def create_admin(hasher: PasswordHasher, username: str, password: str) -> Admin:
    """Store a new admin; ``user_exists`` when the name is taken. For the handler and for
    ``mirrorhub admin add``."""
    if await Admin.exists(username=username):  # before the (slow) hash, as register does
        raise ServiceError(AuthError.USER_EXISTS, TAKEN, "username")
    password_hash = await hasher.hash(password)
    try:
        return await Admin.create(username=username, password_hash=password_hash)
    except IntegrityError as exc:  # a concurrent registration of the name won the race
        raise ServiceError(AuthError.USER_EXISTS, TAKEN, "username") from exc


async def add_admin(settings: AuthSettings, username: str, password: str) -> str:
    """``mirrorhub admin add``: store an admin straight in auth's database (no token needed:
    whoever runs it holds the data dir). The name and password follow the rules of
    ``svc/auth/admin_register`` (pydantic's ``ValidationError`` otherwise); returns the name as
    stored."""
    checked = AdminRegisterRequest(username=username, password=password)
    hasher = PasswordHasher(settings.argon2_memory_kib, settings.argon2_time_cost)
    async with open_database(settings.database_url, "auth", "services.auth.models",
                             "services.auth.migrations"):
        admin = await create_admin(hasher, checked.username, checked.password)
        await record(None, AuditAction.ADMIN_REGISTER, admin.username)
    return admin.username


class Admins:
    """The handlers of ``svc/auth/admin_register``, ``admin_login`` and ``admin_verify``."""

    def __init__(self, hasher: PasswordHasher, tokens: TokenIssuer, throttle: Throttle) -> None:
        self.hasher = hasher
        self.tokens = tokens
        self.throttle = throttle

    async def admin_register(self, req: AdminRegisterRequest) -> AdminRegisterReply:
        if req.token is None and await Admin.exists():
            raise ServiceError(AuthError.ADMIN_REQUIRED, ADMIN_REQUIRED)
        by = None
        if req.token is not None:
            by = (await self.admin_verify(AdminVerifyRequest(token=req.token))).username
        admin = await create_admin(self.hasher, req.username, req.password)
        if req.token is None and await Admin.filter(id__lt=admin.id).exists():
            await admin.delete()  # another first admin committed before this one
            raise ServiceError(AuthError.ADMIN_REQUIRED, ADMIN_REQUIRED)
        # The first admin made itself: it is the actor (an entry by nobody would be the CLI's).
        await record(by or admin.username, AuditAction.ADMIN_REGISTER, admin.username,
                     {"first": req.token is None})
        return AdminRegisterReply(username=admin.username, first=req.token is None)

    async def admin_login(self, req: AdminLoginRequest) -> AdminLoginReply:
        """As a user's login (:func:`services.auth.accounts.checked_login`): throttled first,
        and an unknown admin costs a password check all the same."""
        admin = await checked_login(self.throttle, self.hasher, "admin", Admin, req,
                                    "wrong username or password")
        token, expires = self.tokens.issue(admin.id, admin.username, 0, issuer=ADMIN_ISSUER)
        await record(admin.username, AuditAction.ADMIN_LOGIN, admin.username,
                     {"address": req.address})
        return AdminLoginReply(username=admin.username, token=token, expires_at=expires,
                               expires_in=int(self.tokens.ttl.total_seconds()))

    async def admin_verify(self, req: AdminVerifyRequest) -> AdminVerifyReply:
        """The admin of a token, which must be of the admin issuer, not logged out, and of an
        admin that still exists (and existed when it was issued)."""
        claims, admin = await self._holding(req.token)
        return AdminVerifyReply(username=admin.username, admin_id=admin.id,
                                expires_at=claims.expires_at)

    async def admin_logout(self, req: AdminLogoutRequest) -> AdminLogoutReply:
        """Revoke an admin token, in the table user tokens are revoked in (``jti`` is unique
        across both issuers)."""
        claims, admin = await self._holding(req.token)
        await RevokedToken.filter(expires_at__lte=datetime.now(UTC)).delete()
        with contextlib.suppress(IntegrityError):  # a concurrent logout inserted it first
            await RevokedToken.create(jti=claims.jti, expires_at=claims.expires_at)
        return AdminLogoutReply(username=admin.username)

    async def _holding(self, token: str) -> tuple[Claims, Admin]:
        claims = self.tokens.decode(token, issuer=ADMIN_ISSUER)
        admin = await Admin.get_or_none(id=claims.user_id)
        if (admin is None or claims.issued_at < admin.created_at.replace(microsecond=0)
                or await RevokedToken.exists(jti=claims.jti)):
            raise revoked()
        return claims, admin
