"""``svc/vision/export``: the faces of one user (schemas/export.py), for ``mirrorhub export``:
the subject enrolled under their name, and any other holding photos bound to their account;
counts and dates, and the face crops kept (MIRRORHUB_KEEP_FACE_CROPS=1), never an embedding."""

from __future__ import annotations

from collections import Counter

from tortoise.expressions import Q

from schemas.export import ExportedFace, ExportedPhoto, FacesExport, UserExportRequest
from services.vision.models import FaceEmbedding, NegativeEmbedding, Subject


async def export_faces(req: UserExportRequest) -> FacesExport:
    bound_to = FaceEmbedding.filter(owner_id=req.user_id).values_list("subject_id", flat=True)
    subjects = await Subject.filter(Q(name=req.username) | Q(id__in=list(await bound_to))
                                    ).order_by("name")
    ids = [subject.id for subject in subjects]
    photos = await FaceEmbedding.filter(subject_id__in=ids).order_by("id").values_list(
        "subject_id", "created_at", "engine", "model_version", "owner_id", "crop")
    negatives = Counter(str(owner) for owner in await NegativeEmbedding.filter(
        subject_id__in=ids).values_list("subject_id", flat=True))
    faces = []
    for subject in subjects:
        dates = [ExportedPhoto(enrolled_at=at, engine=engine, model_version=version,
                               bound=owner is not None,
                               face_crop=bytes(crop) if crop is not None else None)
                 for owner_of, at, engine, version, owner, crop in photos
                 if owner_of == subject.id]
        faces.append(ExportedFace(id=subject.name, display_name=subject.display_name,
                                  created_at=subject.created_at, threshold=subject.threshold,
                                  photos=len(dates), negatives=negatives[str(subject.id)],
                                  photo_dates=dates))
    return FacesExport(faces=faces)
