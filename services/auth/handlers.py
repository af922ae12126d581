"""The auth service's declaration: one row per ``svc/auth/*`` operation."""

from __future__ import annotations

from broker.service import Handler, Service
from schemas.admins import (
    AUTH_ADMIN_LOGIN,
    AUTH_ADMIN_LOGOUT,
    AUTH_ADMIN_REGISTER,
    AUTH_ADMIN_VERIFY,
)
from schemas.audit import AUTH_AUDIT, AUTH_AUDIT_RECORD
from schemas.auth import (
    AUTH_DELETE_USER,
    AUTH_DELETIONS,
    AUTH_LOGIN,
    AUTH_LOGOUT,
    AUTH_LOOKUP,
    AUTH_REGISTER,
    AUTH_RESET,
    AUTH_RESET_CONFIRM,
    AUTH_UPDATE_USER,
    AUTH_USER,
    AUTH_USER_DELETED,
    AUTH_USER_RENAMED,
    AUTH_VERIFY,
)
from schemas.export import AUTH_EXPORT
from services.auth.accounts import Accounts
from services.auth.admins import Admins
from services.auth.audit import Audit
from services.auth.deletions import Deletions
from services.auth.exports import export_account
from services.auth.profiles import Profiles
from services.auth.sessions import Sessions

AUTH = Service(
    "auth",
    handlers=(
        Handler(AUTH_REGISTER, Accounts.register),
        Handler(AUTH_LOGIN, Accounts.login),
        Handler(AUTH_VERIFY, Accounts.verify),
        Handler(AUTH_LOOKUP, Accounts.lookup),
        Handler(AUTH_RESET, Accounts.reset_password),
        Handler(AUTH_RESET_CONFIRM, Accounts.confirm_reset),
        Handler(AUTH_LOGOUT, Sessions.logout),
        Handler(AUTH_DELETE_USER, Sessions.delete_user),
        Handler(AUTH_USER, Profiles.user),
        Handler(AUTH_UPDATE_USER, Profiles.update_user),
        Handler(AUTH_DELETIONS, Deletions.since),
        Handler(AUTH_ADMIN_REGISTER, Admins.admin_register),
        Handler(AUTH_ADMIN_LOGIN, Admins.admin_login),
        Handler(AUTH_ADMIN_VERIFY, Admins.admin_verify),
        Handler(AUTH_ADMIN_LOGOUT, Admins.admin_logout),
        Handler(AUTH_AUDIT_RECORD, Audit.audit_record),
        Handler(AUTH_AUDIT, Audit.audit),
        Handler(AUTH_EXPORT, export_account),
    ),
    publishes=(AUTH_USER_DELETED, AUTH_USER_RENAMED),
)
