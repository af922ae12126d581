"""What the auth service does: accounts, logins, token checks and password resets (logout and
account deletion: services/auth/sessions.py)."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import weakref
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import TypeVar

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from schemas.auth import (
    AuthError,
    LoginReply,
    LoginRequest,
    LookupReply,
    LookupRequest,
    RegisterReply,
    RegisterRequest,
    ResetConfirmReply,
    ResetConfirmRequest,
    ResetReply,
    ResetRequest,
    VerifyReply,
    VerifyRequest,
)
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from services.auth.mailer import Mailer
from services.auth.models import Admin, ResetToken, User
from services.auth.passwords import PasswordHasher
from services.auth.sessions import verified
from services.auth.throttle import Action, Throttle
from services.auth.tokens import TokenIssuer

RESET_SENT = "A password reset code was sent to the account's email address"
RESET_HELD = (
    "Reset codes were sent to the account's email address within the last hour; no more are "
    "sent for now: use the latest one, or ask again later"
)
RESET_WINDOW = timedelta(hours=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


Account = TypeVar("Account", User, Admin)


async def checked_login(
    throttle: Throttle,
    hasher: PasswordHasher,
    action: Action,
    model: type[Account],
    req: LoginRequest,
    failed: str,
) -> Account:
    """The account of ``model`` whose name and password ``req`` gives, or ``login_failed``
    with the message ``failed``: throttled under ``action`` before the account is looked up,
    and an unknown name costs a password check all the same (of a decoy hash), so no path
    tells by its time whether an account exists. For users' and face admins' logins."""
    async with throttle.attempt(action, req.username, req.address) as attempt:
        account = await model.get_or_none(username=req.username)
        ok = await hasher.verify(req.password, account.password_hash if account else None)
        if account is None or not ok:
            raise ServiceError(AuthError.LOGIN_FAILED, failed)
        attempt.succeeded()
    return account


class Accounts:
    """The handlers of ``svc/auth/register``, ``login``, ``verify``, ``lookup`` and
    ``reset_password``; each takes a request model and returns a reply model."""

    def __init__(
        self,
        hasher: PasswordHasher,
        tokens: TokenIssuer,
        mailer: Mailer,
        throttle: Throttle,
        *,
        reset_ttl: int,
        mail_from: str,
        reset_mails_per_hour: int = 3,
    ) -> None:
        self.hasher = hasher
        self.tokens = tokens
        self.mailer = mailer
        self.throttle = throttle
        self.reset_ttl = timedelta(seconds=reset_ttl)
        self.mail_from = mail_from
        self.reset_mails_per_hour = reset_mails_per_hour
        # One reset at a time per user, so a burst of them counts the codes of the others.
        self._resetting: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary())

    async def register(self, req: RegisterRequest) -> RegisterReply:
        username = req.username
        if await User.exists(username=username):
            raise ServiceError(AuthError.USER_EXISTS, "exist user", "username")
        password_hash = await self.hasher.hash(req.password)
        try:
            await User.create(username=username, password_hash=password_hash, email=req.email,
                              first_name=req.first_name, last_name=req.last_name,
                              profile=req.profile, fullname=req.fullname)
        except IntegrityError as exc:  # a concurrent registration won the race
            raise ServiceError(AuthError.USER_EXISTS, "exist user", "username") from exc
        return RegisterReply(username=username)

    async def login(self, req: LoginRequest) -> LoginReply:
        """Throttled, and as slow for an unknown user (:func:`checked_login`)."""
        user = await checked_login(self.throttle, self.hasher, "login", User, req,
                                   "Please check your username or password")
        token, expires = self.tokens.issue(user.id, user.username, user.token_version)
        return LoginReply(username=user.username, token=token, expires_at=expires,
                          expires_in=int(self.tokens.ttl.total_seconds()))

    async def verify(self, req: VerifyRequest) -> VerifyReply:
        return await verified(self.tokens, req)

    async def lookup(self, req: LookupRequest) -> LookupReply:
        wanted = set(req.usernames)
        found = await User.filter(username__in=wanted).values_list("username", flat=True)
        return LookupReply(found=sorted(str(name) for name in found))

    async def reset_password(self, req: ResetRequest) -> ResetReply:
        """Mail a reset code, at most ``reset_mails_per_hour`` to one account: beyond that the
        reply is :data:`RESET_HELD` and nothing is sent (so nobody can flood a mailbox). Codes
        whose mail could not be sent do not count. Only the account's owner learns anything
        new from the held reply: an unknown account is ``Not Found User`` either way, and so is
        one registered without an email address (seed 004's). Each ``Not Found User`` is a
        failure for the throttle, as a wrong password is for :meth:`login`."""
        async with self.throttle.attempt("reset", req.username, req.address) as attempt:
            user = await User.get_or_none(username=req.username)
            if (user is None or user.email is None
                    or user.email.casefold() != req.email.casefold()):
                raise ServiceError(AuthError.USER_NOT_FOUND, "Not Found User")
            attempt.succeeded()
        lock = self._resetting.setdefault(user.id, asyncio.Lock())
        async with lock:
            now = datetime.now(UTC)
            sent = await ResetToken.filter(user_id=user.id,
                                           created_at__gt=now - RESET_WINDOW).count()
            if sent >= self.reset_mails_per_hour:
                return ResetReply(message=RESET_HELD)
            token = secrets.token_urlsafe(32)
            expires = now + self.reset_ttl
            row = await ResetToken.create(user=user, token_hash=_digest(token),
                                          expires_at=expires)
        try:
            await self.mailer.send(self._reset_mail(user, token, expires))
        except Exception as exc:
            await row.delete()
            raise ServiceError(
                ErrorCode.UNAVAILABLE, "The reset mail could not be sent; please try again later"
            ) from exc
        return ResetReply(message=RESET_SENT)

    def _reset_mail(self, user: User, token: str, expires: datetime) -> EmailMessage:
        mail = EmailMessage()
        mail["From"] = self.mail_from
        mail["To"] = user.email
        mail["Subject"] = "Your mirrorhub password reset code"
        mail.set_content(
            f"Hello {user.username},\n\n"
            f"Someone asked to reset the password of this mirrorhub account.\n"
            f"Your reset code: {token}\n\n"
            f"Send it with your new password to POST /reset_password/confirm "
            f"(fields: token, password).\nIt works once, until {expires:%Y-%m-%d %H:%M} UTC.\n"
            f"If this was not you, ignore this mail.\n"
        )
        return mail

    async def confirm_reset(self, req: ResetConfirmRequest) -> ResetConfirmReply:
        password_hash = await self.hasher.hash(req.password)
        now = datetime.now(UTC)
        async with in_transaction():
            row = await ResetToken.get_or_none(token_hash=_digest(req.token)).select_related(
                "user"
            )
            if row is None or row.used_at is not None or row.expires_at <= now:
                raise ServiceError(AuthError.TOKEN_INVALID,
                                   "reset code is unknown, used or expired", "token")
            # Single use, even under concurrent confirms: only one update finds it unused.
            claimed = await ResetToken.filter(id=row.id, used_at=None).update(used_at=now)
            if claimed != 1:
                raise ServiceError(AuthError.TOKEN_INVALID, "reset code was already used", "token")
            user = row.user
            user.password_hash = password_hash
            user.token_version += 1
            user.kept_jti = None  # a reset by mail keeps no token: it revokes them all
            await user.save(update_fields=["password_hash", "token_version", "kept_jti"])
            await ResetToken.filter(user_id=user.id, used_at=None).update(used_at=now)
        return ResetConfirmReply(username=user.username)
