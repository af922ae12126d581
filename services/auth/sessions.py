"""Which tokens still hold (:func:`holding`, which ``svc/auth/verify`` asks too), logging out
(revoking one token) and deleting accounts.

A token stops verifying when

* it is revoked: its ``jti`` is in ``auth_revoked_token`` (logout). The row is kept until the
  token would have expired anyway; each logout purges the rows past that;
* its user changed the password since (``token_version``, bumped by a password reset or a
  change), unless it is the token that made the change (``kept_jti``: seed 003's
  ``PUT /api/user`` keeps its own token working);
* its user is gone (account deleted), or was created after the token was issued: ids are not
  reused (AUTOINCREMENT on SQLite, sequences on PostgreSQL), and this check keeps an old token
  from ever passing for a newer account should one be.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import UTC, datetime
from typing import Any, Protocol

from pydantic import BaseModel
from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from schemas.auth import (
    AUTH_USER_DELETED,
    AuthError,
    DeleteUserReply,
    DeleteUserRequest,
    LogoutReply,
    LogoutRequest,
    TokenReason,
    VerifyReply,
    VerifyRequest,
)
from schemas.errors import BusUnavailable, ServiceError
from schemas.topics import Topic
from services.auth import deletions
from services.auth.deletions import Deletions
from services.auth.models import RevokedToken, User
from services.auth.tokens import Claims, TokenIssuer

log = logging.getLogger(__name__)


class Publisher(Protocol):
    """Where the service's events go (the service's :class:`broker.client.Bus`)."""

    async def publish(self, topic: Topic[Any], payload: BaseModel, *, qos: int = 1) -> None: ...


def revoked() -> ServiceError:
    """``token_invalid``, reason ``revoked``: the token no longer holds."""
    return ServiceError(AuthError.TOKEN_INVALID, "token was revoked", reason=TokenReason.REVOKED)


async def holding(tokens: TokenIssuer, token: str) -> tuple[Claims, User | None]:
    """The claims of ``token`` and its user (None when the account is gone); ``token_invalid``
    when the token does not hold for any other reason (see the module docstring)."""
    claims = tokens.decode(token)
    if await RevokedToken.exists(jti=claims.jti):
        raise revoked()
    user = await User.get_or_none(id=claims.user_id).only(
        "id", "username", "token_version", "kept_jti", "created_at", "fullname", "profile",
        "first_name", "last_name")  # the last three: svc/auth/user's own record
    if user is not None and (
        (user.token_version != claims.version and user.kept_jti != claims.jti)
        or claims.issued_at < user.created_at.replace(microsecond=0)
    ):
        raise revoked()
    return claims, user


async def verified(tokens: TokenIssuer, req: VerifyRequest) -> VerifyReply:
    """What ``svc/auth/verify`` answers (:meth:`services.auth.accounts.Accounts.verify`)."""
    claims, user = await holding(tokens, req.token)
    if user is None:
        raise revoked()
    return VerifyReply(username=user.username, user_id=user.id,
                       expires_at=claims.expires_at, fullname=user.fullname)


class Sessions:
    """The handlers of ``svc/auth/logout`` and ``delete_user``."""

    def __init__(self, tokens: TokenIssuer, events: Publisher, tombstones: Deletions) -> None:
        self.tokens = tokens
        self.events = events
        self.tombstones = tombstones

    async def logout(self, req: LogoutRequest) -> LogoutReply:
        """Revoke ``req.token``: it is ``token_invalid`` from now on, everywhere."""
        claims, user = await holding(self.tokens, req.token)
        if user is None:
            raise revoked()
        await RevokedToken.filter(expires_at__lte=datetime.now(UTC)).delete()
        # A concurrent logout of the same token may insert first: revoked either way.
        with contextlib.suppress(IntegrityError):
            await RevokedToken.create(jti=claims.jti, expires_at=claims.expires_at)
        return LogoutReply(username=user.username)

    async def delete_user(self, req: DeleteUserRequest) -> DeleteUserReply:
        """Delete the token's account (its reset codes go with it) and leave its tombstone in
        the same transaction (services/auth/deletions.py), then announce it on
        ``events/auth/user_deleted``. ``user_not_found`` when the account is already gone.

        The deletion stands even if the announcement cannot be made (the broker is away):
        services find it among the tombstones when they next catch up."""
        _, user = await holding(self.tokens, req.token)
        if user is None:
            raise gone()
        async with in_transaction():
            if await User.filter(id=user.id).delete() != 1:
                raise gone()  # a concurrent deletion with another token of the account
            event = await deletions.record(user.id, user.username)
        await self.tombstones.purge()
        try:
            await self.events.publish(AUTH_USER_DELETED, event)
        except BusUnavailable:
            log.warning("auth: deletion %d of %s not announced (broker unreachable); services "
                        "catch up from its tombstone", event.seq, user.username)
        return DeleteUserReply(username=user.username)


def gone() -> ServiceError:
    """``user_not_found``: the token holds, but its account was deleted."""
    return ServiceError(AuthError.USER_NOT_FOUND, "the token's account no longer exists")
