"""Face crops kept for the admin page's thumbnails, and only when the operator asks for them.

By default vision keeps no photo and no crop of anyone, only embeddings. With
``MIRRORHUB_KEEP_FACE_CROPS=1`` each enrolled photo also keeps a small JPEG of its face (the
face box and a margin around it, at most :data:`THUMBNAIL_PX` on its longer side), stored
with the photo's embedding row: it goes wherever the row goes (a renamed account's faces) and
with it (a deleted face, a deleted account). Turned off again, the crops kept so far are
removed when the service starts (:func:`forget_crops`).
"""

from __future__ import annotations

import logging

import cv2

from services.vision.engine import Box, RGBImage
from services.vision.models import FaceEmbedding

log = logging.getLogger(__name__)

THUMBNAIL_PX = 96
MARGIN = 0.25  # of the box's size, on each side
JPEG_QUALITY = 85


def face_thumbnail(image: RGBImage, box: Box) -> bytes:
    """A JPEG of the face in ``box`` with a margin, clipped to the image, scaled down so that
    its longer side is at most :data:`THUMBNAIL_PX`."""
    height, width = image.shape[:2]
    grow_x = round((box.right - box.left) * MARGIN)
    grow_y = round((box.bottom - box.top) * MARGIN)
    left, top = max(box.left - grow_x, 0), max(box.top - grow_y, 0)
    right, bottom = min(box.right + grow_x, width), min(box.bottom + grow_y, height)
    crop = cv2.cvtColor(image[top:bottom, left:right], cv2.COLOR_RGB2BGR)
    longer = max(crop.shape[:2])
    if longer > THUMBNAIL_PX:
        scale = THUMBNAIL_PX / longer
        size = (max(round(crop.shape[1] * scale), 1), max(round(crop.shape[0] * scale), 1))
        crop = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", crop,
                               [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:  # OpenCV encodes any non-empty 8-bit image; an empty crop has no face
        raise ValueError("the face crop could not be encoded")
    return bytes(encoded)


async def forget_crops() -> int:
    """Remove every kept crop (keeping them was turned off); how many there were."""
    removed = await FaceEmbedding.filter(crop__isnull=False).update(crop=None)
    if removed:
        log.info("vision: %d kept face crops removed (MIRRORHUB_KEEP_FACE_CROPS is not set)",
                 removed)
    return int(removed)


async def newest_crop(subject_id: int) -> bytes | None:
    """The crop of the subject's newest photo that kept one, if any."""
    crops = await FaceEmbedding.filter(subject_id=subject_id, crop__isnull=False).order_by(
        "-id").limit(1).values_list("crop", flat=True)
    return bytes(crops[0]) if crops else None
