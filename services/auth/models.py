"""The auth service's tables. Changes here need a migration: see docs/operations.md."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


# One user of every API family (seeds 000, 003 and 004): each family asks for some of the
# optional fields. (No docstring: tortoise would put it into the DDL as a table comment.)
class User(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    email = fields.CharField(max_length=254, null=True)  # 000 asks for it, 004 does not
    password_hash = fields.CharField(max_length=255)
    # Bumped on every password change; tokens carry it, so older tokens stop verifying...
    token_version = fields.IntField(default=0)
    # ...except this one: the token that changed the password through the account itself
    # (seed 003's PUT /api/user), which goes on working. None after a reset by mail.
    kept_jti = fields.CharField(max_length=64, null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    first_name = fields.CharField(max_length=128, null=True)  # seed 003
    last_name = fields.CharField(max_length=128, null=True)  # seed 003
    profile = fields.CharField(max_length=255, null=True)  # seed 003: a profile picture's key
    fullname = fields.CharField(max_length=128, null=True)  # seed 004

    class Meta:
        table = "auth_user"


# A single-use password reset token. Only its SHA-256 is stored. (No docstring: tortoise would
# put it into the DDL as a table comment.)
class ResetToken(Model):
    id = fields.IntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "auth.User", related_name="reset_tokens", on_delete=fields.CASCADE
    )
    token_hash = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "auth_reset_token"


# A logged-out token, by its ``jti``, until it would have expired anyway: then the row is purged.
class RevokedToken(Model):
    id = fields.IntField(primary_key=True)
    jti = fields.CharField(max_length=64, unique=True)
    expires_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "auth_revoked_token"


# One failed login or password reset (``pending`` while it still runs), kept for the
# throttling window (services/auth/throttle.py) and purged after it. ``action`` is "login",
# "reset" or "admin" (a face admin's login); ``address`` is the client's, when the caller said
# it. Rows are the only state, so every auth instance on the database agrees. (No docstring:
# tortoise would put it into the DDL as a table comment.)
class FailedAttempt(Model):
    id = fields.IntField(primary_key=True)
    action = fields.CharField(max_length=8)
    username = fields.CharField(max_length=64)
    address = fields.CharField(max_length=64, null=True)
    at = fields.DatetimeField(db_index=True)
    pending = fields.BooleanField(default=True)

    class Meta:
        table = "auth_failed_attempt"
        indexes = (("action", "username", "at"), ("action", "address", "at"))


# A deleted account's tombstone, for services that missed the deletion (services/auth/
# deletions.py): ``seq`` comes from DeletionCounter, so tombstones are numbered without gaps in
# the order they committed. Purged once older than MIRRORHUB_DELETION_RETENTION_DAYS.
class Deletion(Model):
    seq = fields.IntField(primary_key=True, generated=False)
    user_id = fields.IntField()
    username = fields.CharField(max_length=64)
    deleted_at = fields.DatetimeField(db_index=True)

    class Meta:
        table = "auth_deletion"


# One row (id 1, made by the migration): the last tombstone's seq. Each deletion locks it, so
# deletions commit one after the other and their seqs in order.
class DeletionCounter(Model):
    id = fields.IntField(primary_key=True, generated=False)
    last_seq = fields.IntField(default=0)

    class Meta:
        table = "auth_deletion_counter"


# A face admin (seed 002's /jwt/...): an account apart from users, with tokens of its own issuer
# (services/auth/admins.py). (No docstring: tortoise would put it into the DDL as a table
# comment.)
class Admin(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    password_hash = fields.CharField(max_length=255)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "auth_admin"


# The admins' audit log (schemas/audit.py): only ever added to. ``actor`` is the admin's name
# as it was (an admin renamed or removed later keeps their entries); NULL for the command line.
class AuditEntry(Model):
    id = fields.IntField(primary_key=True)
    at = fields.DatetimeField(auto_now_add=True, db_index=True)
    actor = fields.CharField(max_length=64, null=True)
    source = fields.CharField(max_length=16)
    action = fields.CharField(max_length=32)
    target = fields.CharField(max_length=128)
    detail: fields.Field[dict[str, object]] = fields.JSONField()

    class Meta:
        table = "auth_audit"
