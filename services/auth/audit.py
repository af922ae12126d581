"""The handlers of ``svc/auth/audit_record`` and ``svc/auth/audit`` (schemas/audit.py)."""

from __future__ import annotations

from schemas.admins import AdminVerifyRequest
from schemas.audit import AuditEntry, AuditRecordRequest, AuditReply, AuditRequest
from services.auth import models
from services.auth.admins import Admins
from services.auth.audit_log import record, shown


class Audit:
    """An admin's token is checked by :meth:`Admins.admin_verify`: ``token_invalid`` (with its
    reason) for anybody else's."""

    def __init__(self, admins: Admins) -> None:
        self.admins = admins

    async def audit_record(self, req: AuditRecordRequest) -> AuditEntry:
        actor = None
        if req.token is not None:
            actor = (await self.admins.admin_verify(AdminVerifyRequest(token=req.token))).username
        return await record(actor, req.action, req.target, req.detail)

    async def audit(self, req: AuditRequest) -> AuditReply:
        await self.admins.admin_verify(AdminVerifyRequest(token=req.token))
        rows = await models.AuditEntry.all().order_by("-id").offset(req.offset).limit(req.limit)
        return AuditReply(entries=[shown(row) for row in rows],
                          total=await models.AuditEntry.all().count(), offset=req.offset,
                          limit=req.limit)
