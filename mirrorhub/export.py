"""``mirrorhub export USER``: everything mirrorhub holds about one user, as one JSON document on
stdout, gathered over MQTT from each service (schemas/export.py): the account from auth, then
messages, layouts and files' metadata from messaging and faces from vision, side by side.

The export itself goes into the admins' audit log (``user.export``, from the command line),
with what it counted. Nothing is read from a database directly, so it works wherever the
services run.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from broker.client import Bus
from broker.settings import BusSettings
from broker.tracing import request_id
from schemas.audit import AUTH_AUDIT_RECORD, AuditAction, AuditRecordRequest
from schemas.export import (
    AUTH_EXPORT,
    MESSAGING_EXPORT,
    VISION_EXPORT,
    AccountExportRequest,
    UserExportRequest,
)

TIMEOUT = 30.0  # a long history is one large reply


async def gather(bus: Bus, username: str) -> dict[str, Any]:
    """The export of ``username`` as a JSON-able dict; auth's ``user_not_found`` (a
    :class:`~schemas.errors.ServiceError`) when there is no such user."""
    account = await bus.request(AUTH_EXPORT, AccountExportRequest(username=username),
                                timeout=TIMEOUT)
    whom = UserExportRequest(username=account.username, user_id=account.id)
    held, faces = await asyncio.gather(bus.request(MESSAGING_EXPORT, whom, timeout=TIMEOUT),
                                       bus.request(VISION_EXPORT, whom, timeout=TIMEOUT))
    document = {
        "exported_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "account": account.model_dump(mode="json"),
        **held.model_dump(mode="json"),
        **faces.model_dump(mode="json"),
    }
    await bus.request(AUTH_AUDIT_RECORD, AuditRecordRequest(
        action=AuditAction.USER_EXPORT, target=account.username, detail={
            "messages": len(held.messages), "layouts": len(held.layouts),
            "files": len(held.files), "faces": len(faces.faces)}))
    return document


async def export_user(settings: BusSettings, username: str) -> str:
    """The command's output: the export as indented JSON."""
    async with Bus(settings, role="export") as bus:
        with request_id(f"export-{uuid.uuid4().hex[:12]}"):
            document = await gather(bus, username)
    return json.dumps(document, indent=2, ensure_ascii=False)
