"""The vision service's tables. Raw images are not kept; only embeddings, and for a while
the recognitions made with them."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


# One enrolled person: ``name`` is its id in seed 002's API; ``display_name`` the name given at
# ``POST /api/face/register`` (NULL: the id); ``threshold`` its own match threshold (NULL: the
# service's), set with ``PATCH /api/face/:id``.
class Subject(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    display_name = fields.CharField(max_length=64, null=True)
    threshold = fields.FloatField(null=True)

    class Meta:
        table = "vision_subject"


# One enrolled photo of a subject: its embedding (float32 bytes), tagged with the engine and
# model version that made it, since embeddings of different models cannot be compared.
# ``owner_id`` is the auth user id of the account whose token enrolled it (the photo is bound:
# it unlocks that user's private content); NULL when enrolled without a token (it only greets).
# ``photo_sha256`` is the SHA-256 (hex) of the photo's bytes as enrolled, so that a bulk import
# run again skips what it enrolled before (``svc/vision/known_photos``); NULL for photos
# enrolled before it was kept. The photo itself is not kept; ``crop``, a small JPEG of its face,
# only with MIRRORHUB_KEEP_FACE_CROPS=1 (services/vision/crops.py).
class FaceEmbedding(Model):
    id = fields.IntField(primary_key=True)
    subject: fields.ForeignKeyRelation[Subject] = fields.ForeignKeyField(
        "vision.Subject", related_name="embeddings", on_delete=fields.CASCADE
    )
    engine = fields.CharField(max_length=32)
    model_version = fields.CharField(max_length=200)
    vector = fields.BinaryField()
    created_at = fields.DatetimeField(auto_now_add=True)
    owner_id = fields.IntField(null=True)
    photo_sha256 = fields.CharField(max_length=64, null=True, db_index=True)
    crop = fields.BinaryField(null=True)

    class Meta:
        table = "vision_face_embedding"
        indexes = (("engine", "model_version"),)


# A face reported as *not* the subject ("not me"): a face nearer to one of these than to the
# subject's own photos is not taken for the subject (services/vision/matcher.py).
# ``reported_by`` says who reported it: ``admin:<name>`` or ``mirror:<mirror id>``.
class NegativeEmbedding(Model):
    id = fields.IntField(primary_key=True)
    subject: fields.ForeignKeyRelation[Subject] = fields.ForeignKeyField(
        "vision.Subject", related_name="negatives", on_delete=fields.CASCADE
    )
    engine = fields.CharField(max_length=32)
    model_version = fields.CharField(max_length=200)
    vector = fields.BinaryField()
    created_at = fields.DatetimeField(auto_now_add=True)
    reported_by = fields.CharField(max_length=80)

    class Meta:
        table = "vision_negative_embedding"
        indexes = (("engine", "model_version"),)


# The last tombstone of auth's deleted accounts applied here (services/tombstones.py), shared by
# the workers of one database: one row, id 1, made by the migration.
class DeletionCursor(Model):
    id = fields.IntField(primary_key=True, generated=False)
    last_seq = fields.IntField(default=0)

    class Meta:
        table = "vision_deletion_cursor"


# A recognition kept for the admin page (services/vision/recognitions.py): an enrolled face seen
# at a mirror. ``name`` is the subject's id then (no foreign key: a row outlives nothing, it is
# deleted with its subject, and purged after MIRRORHUB_RETENTION_DAYS anyway).
class Recognition(Model):
    id = fields.IntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    mirror_id = fields.CharField(max_length=64)
    name = fields.CharField(max_length=64, db_index=True)
    distance = fields.FloatField(null=True)
    live = fields.BooleanField(null=True)
    live_reason = fields.CharField(max_length=200, null=True)
    trusted = fields.BooleanField(default=False)

    class Meta:
        table = "vision_recognition"
