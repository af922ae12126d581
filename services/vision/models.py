"""The vision service's tables. Raw images are not kept; only embeddings."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class Subject(Model):
    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=64, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "vision_subject"


# One enrolled photo of a subject: its embedding (float32 bytes), tagged with the engine and
# model version that made it, since embeddings of different models cannot be compared.
class FaceEmbedding(Model):
    id = fields.IntField(primary_key=True)
    subject: fields.ForeignKeyRelation[Subject] = fields.ForeignKeyField(
        "vision.Subject", related_name="embeddings", on_delete=fields.CASCADE
    )
    engine = fields.CharField(max_length=32)
    model_version = fields.CharField(max_length=200)
    vector = fields.BinaryField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "vision_face_embedding"
        indexes = (("engine", "model_version"),)
