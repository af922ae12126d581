"""Which photos vision holds already, by content: what makes a bulk import resumable
(``mirrorhub faces import``, mirrorhub/faces_import.py).

Every photo enrolled (``svc/vision/enrol``, ``svc/vision/register``) is kept as its embedding
and the SHA-256 of its bytes, never the photo. An importer hashes its files, asks which of the
hashes are known for the running engine and model (an embedding of another model would not be
used), and sends only the others. Only internal accounts may ask (the broker keeps mirrors off
``svc/...``).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from schemas.topics import Operation

KNOWN_MAX = 1000  # hashes per request

Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class KnownPhotosRequest(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    sha256: list[Sha256] = Field(max_length=KNOWN_MAX)


class KnownPhotosReply(BaseModel):
    """The hashes of the request that belong to photos enrolled with the running engine and
    model version."""

    known: list[str]


VISION_KNOWN_PHOTOS = Operation(
    "svc/vision/known_photos", KnownPhotosRequest,
    "Which of these photo hashes (SHA-256) are enrolled already.", reply=KnownPhotosReply,
)
