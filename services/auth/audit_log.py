"""Writing the admins' audit log (schemas/audit.py): :func:`record`, with which auth logs its
own admin actions (registering an admin, an admin's login) and ``svc/auth/audit_record`` those
of others (services/auth/audit.py)."""

from __future__ import annotations

import json
from typing import Any

from schemas.audit import DETAIL_MAX, TARGET_MAX, AuditAction, AuditEntry
from schemas.envelope import ErrorCode
from schemas.errors import ServiceError
from services.auth import models

API, COMMAND = "api", "command"


def shown(row: models.AuditEntry) -> AuditEntry:
    return AuditEntry(id=row.id, at=row.at, actor=row.actor, source=row.source,
                      action=row.action, target=row.target, detail=dict(row.detail))


async def record(actor: str | None, action: AuditAction, target: str = "",
                 detail: dict[str, Any] | None = None) -> AuditEntry:
    """Add an entry: ``actor`` the admin who acted, None for the command line. The detail is
    stored as JSON (what JSON cannot hold, as text), at most :data:`DETAIL_MAX` bytes."""
    text = json.dumps(detail or {}, default=str)
    if len(text) > DETAIL_MAX:
        raise ServiceError(ErrorCode.INVALID, f"detail: at most {DETAIL_MAX} bytes of JSON",
                           "detail")
    row = await models.AuditEntry.create(
        actor=actor, source=API if actor is not None else COMMAND, action=str(action),
        target=target[:TARGET_MAX], detail=json.loads(text))
    return shown(row)
