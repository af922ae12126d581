"""``svc/auth/export``: one user's account as auth holds it, for ``mirrorhub export``
(schemas/export.py). Secrets (the password hash, token versions) are not data about the user
and stay out."""

from __future__ import annotations

from schemas.auth import AuthError
from schemas.errors import ServiceError
from schemas.export import AccountExport, AccountExportRequest
from schemas.names import normal_username
from services.auth.models import User


async def export_account(req: AccountExportRequest) -> AccountExport:
    user = await User.get_or_none(username=normal_username(req.username))
    if user is None:
        raise ServiceError(AuthError.USER_NOT_FOUND, f"no user {req.username}", "username")
    return AccountExport(id=user.id, username=user.username, email=user.email,
                         first_name=user.first_name, last_name=user.last_name,
                         fullname=user.fullname, profile=user.profile,
                         created_at=user.created_at)
