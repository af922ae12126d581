"""The messaging service's tables. Changes here need a migration: see docs/operations.md.

(No docstrings on the models: tortoise puts them into the DDL as table comments.)
"""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


# A message from one user to another. ``message_id`` is the sender's idempotency key: a
# request delivered twice (QoS 1, a client retry) finds its row instead of adding one.
class Message(Model):
    id = fields.IntField(primary_key=True)
    message_id = fields.CharField(max_length=64, unique=True)
    sender = fields.CharField(max_length=64, db_index=True)  # a history lists what one sent
    receiver = fields.CharField(max_length=64, db_index=True)
    content = fields.TextField()
    created_at = fields.DatetimeField(auto_now_add=True)
    read_at = fields.DatetimeField(null=True)  # set when a mirror showed it
    # A file of the sender's the message names (both set, or neither).
    attachment_type = fields.CharField(max_length=32, null=True)
    attachment_name = fields.CharField(max_length=255, null=True)

    class Meta:
        table = "messaging_message"


# A user's file: its key (owner, type, name) and the content it names, a blob stored under its
# SHA-256 (services/messaging/blobs.py). Several files may name one blob; the blob goes when the
# last of them does.
class File(Model):
    id = fields.IntField(primary_key=True)
    owner = fields.CharField(max_length=64, db_index=True)
    file_type = fields.CharField(max_length=32)
    file_name = fields.CharField(max_length=255)
    sha256 = fields.CharField(max_length=64, db_index=True)
    size = fields.BigIntField()
    content_type = fields.CharField(max_length=127)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "messaging_file"
        unique_together = (("owner", "file_type", "file_name"),)


# A widget layout for a mirror model; ``username`` is empty for the model's own layout and set
# for a user's layout on that model (empty, not NULL, so the pair is unique on every database).
class Layout(Model):
    id = fields.IntField(primary_key=True)
    model_code = fields.CharField(max_length=64)
    username = fields.CharField(max_length=64, default="")
    positions: fields.Field[dict[str, list[int]]] = fields.JSONField()
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "messaging_layout"
        unique_together = (("model_code", "username"),)


# The last word of each mirror: retained status and widget state.
class Mirror(Model):
    mirror_id = fields.CharField(max_length=128, primary_key=True)
    status = fields.CharField(max_length=16, null=True)
    model_code = fields.CharField(max_length=64, null=True)
    widgets: fields.Field[dict[str, object]] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "messaging_mirror"


# The last tombstone of auth's deleted accounts applied here (services/tombstones.py): one row,
# id 1, made by the migration.
class DeletionCursor(Model):
    id = fields.IntField(primary_key=True, generated=False)
    last_seq = fields.IntField(default=0)

    class Meta:
        table = "messaging_deletion_cursor"
