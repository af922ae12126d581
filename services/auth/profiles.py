"""An account's own record: reading it (``svc/auth/user``) and changing it
(``svc/auth/update_user``), for the holder of one of its tokens (seed 003's ``/api/user``).

Both take the token and check it themselves (:func:`services.auth.sessions.holding`), so no
caller can read another account's private fields or change another account.
"""

from __future__ import annotations

from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from schemas.auth import (
    AUTH_USER_RENAMED,
    AuthError,
    UpdateUserReply,
    UpdateUserRequest,
    UserRecord,
    UserRenamed,
    UserRequest,
)
from schemas.errors import ServiceError
from services.auth.models import ResetToken, User
from services.auth.passwords import PasswordHasher
from services.auth.sessions import Publisher, gone, holding, revoked
from services.auth.tokens import TokenIssuer

# What PUT may set besides the password, as stored in the same-named columns.
_FIELDS = ("username", "first_name", "last_name", "profile")


def _taken() -> ServiceError:
    return ServiceError(AuthError.USER_EXISTS, "exist user", "username")


class Profiles:
    """The handlers of ``svc/auth/user`` and ``svc/auth/update_user``."""

    def __init__(self, hasher: PasswordHasher, tokens: TokenIssuer, events: Publisher) -> None:
        self.hasher = hasher
        self.tokens = tokens
        self.events = events

    async def user(self, req: UserRequest) -> UserRecord:
        """The record of ``req.id`` (the token's own account when None). Another account's
        shows its public fields only: id, username and profile picture. ``user_not_found``
        for an id nobody has."""
        _, me = await holding(self.tokens, req.token)
        if me is None:
            raise revoked()
        row = me if req.id in (None, me.id) else await User.get_or_none(id=req.id)
        if row is None:
            raise ServiceError(AuthError.USER_NOT_FOUND, f"no user has id {req.id}", "id")
        own = row.id == me.id
        return UserRecord(id=row.id, username=row.username, profile=row.profile,
                          first_name=row.first_name if own else None,
                          last_name=row.last_name if own else None)

    async def update_user(self, req: UpdateUserRequest) -> UpdateUserReply:
        """Store each field given. A new password is a password change as a reset is (every
        token of the account issued before stops verifying, its unused reset codes too)
        except that the token sent keeps working. A new username that is taken is
        ``user_exists``; one that changed is announced on ``events/auth/user_renamed``.
        ``user_not_found`` when the token's account is gone."""
        claims, me = await holding(self.tokens, req.token)
        if me is None:
            raise gone()
        given = {name: getattr(req, name) for name in _FIELDS if getattr(req, name) is not None}
        password_hash = None if req.password is None else await self.hasher.hash(req.password)
        async with in_transaction():
            row = await User.select_for_update().get_or_none(id=me.id)
            if row is None:
                raise gone()
            old_username = row.username
            changed = sorted(name for name, value in given.items() if getattr(row, name) != value)
            if "username" in changed and await User.exists(username=given["username"]):
                raise _taken()
            for name in changed:
                setattr(row, name, given[name])
            if password_hash is not None:
                row.password_hash = password_hash
                row.token_version += 1
                row.kept_jti = claims.jti
                changed = sorted([*changed, "password"])
                await ResetToken.filter(user_id=row.id, used_at=None).update(
                    used_at=datetime.now(UTC))
            if changed:
                columns = [n for n in changed if n != "password"]
                if password_hash is not None:
                    columns += ["password_hash", "token_version", "kept_jti"]
                try:
                    await row.save(update_fields=columns)
                except IntegrityError as exc:  # a concurrent registration or rename won
                    raise _taken() from exc
        if "username" in changed:
            await self.events.publish(AUTH_USER_RENAMED, UserRenamed(
                user_id=row.id, old_username=old_username, new_username=row.username))
        return UpdateUserReply(username=row.username, changed=changed)
