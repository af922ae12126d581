"""``svc/messaging/export``: one user's messages, layouts and files' metadata
(schemas/export.py), for ``mirrorhub export``. File contents stay in the store."""

from __future__ import annotations

from tortoise.expressions import Q

from schemas.export import (
    ExportedFile,
    ExportedLayout,
    ExportedMessage,
    MessagingExport,
    UserExportRequest,
)
from services.messaging.models import File, Layout, Message


async def export_user(req: UserExportRequest) -> MessagingExport:
    name = req.username
    messages = await Message.filter(Q(sender=name) | Q(receiver=name)).order_by("id")
    layouts = await Layout.filter(username=name).order_by("model_code")
    files = await File.filter(owner=name).order_by("file_type", "file_name")
    return MessagingExport(
        messages=[ExportedMessage(
            id=m.id, direction="sent" if m.sender == name else "received", sender=m.sender,
            receiver=m.receiver, content=m.content, created_at=m.created_at, read_at=m.read_at,
            attachment_type=m.attachment_type, attachment_name=m.attachment_name)
            for m in messages],
        layouts=[ExportedLayout(model_code=lay.model_code, positions=dict(lay.positions),
                                updated_at=lay.updated_at) for lay in layouts],
        files=[ExportedFile(file_type=f.file_type, file_name=f.file_name, size=f.size,
                            content_type=f.content_type, created_at=f.created_at,
                            updated_at=f.updated_at) for f in files],
    )
