"""Tombstones of deleted accounts, so that a service that was down when an account went still
removes what it kept of it.

:meth:`Sessions.delete_user <services.auth.sessions.Sessions.delete_user>` writes the tombstone
with :func:`record` in the transaction that deletes the account: there is a tombstone exactly
when the account is gone. ``seq`` comes from the one row of ``auth_deletion_counter``, bumped
by an ``UPDATE`` in that transaction; the row stays locked until the commit, so concurrent
deletions commit one after another and a service that has read up to ``seq`` n can never see
a smaller ``seq`` appear later (as it could with an autoincrement id, where a transaction that
took 5 may commit after one that took 6).

``svc/auth/deletions`` (:meth:`Deletions.since`) serves them in order. They are kept for
``retention`` (``MIRRORHUB_DELETION_RETENTION_DAYS``, 30 days by default), long enough for any
service to come back; every deletion purges the older ones, since a tombstone is itself a
record (username, id, time) of somebody who asked to be forgotten.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tortoise.expressions import F

from schemas.auth import DeletionsReply, DeletionsRequest, UserDeleted
from services.auth.models import Deletion, DeletionCounter

COUNTER_ID = 1


def _event(row: Deletion) -> UserDeleted:
    return UserDeleted(username=row.username, user_id=row.user_id, seq=row.seq,
                       deleted_at=row.deleted_at)


async def record(user_id: int, username: str) -> UserDeleted:
    """Write the tombstone of a deleted account; call it inside the deletion's transaction."""
    await DeletionCounter.filter(id=COUNTER_ID).update(last_seq=F("last_seq") + 1)
    counter = await DeletionCounter.get(id=COUNTER_ID)
    row = await Deletion.create(seq=counter.last_seq, user_id=user_id, username=username,
                                deleted_at=datetime.now(UTC))
    return _event(row)


class Deletions:
    """The handler of ``svc/auth/deletions``, and the tombstones' retention."""

    def __init__(self, retention: timedelta) -> None:
        self.retention = retention

    async def since(self, req: DeletionsRequest) -> DeletionsReply:
        rows = await Deletion.filter(seq__gt=req.after).order_by("seq").limit(req.limit)
        counter = await DeletionCounter.get(id=COUNTER_ID)
        return DeletionsReply(deletions=[_event(row) for row in rows], last_seq=counter.last_seq)

    async def purge(self) -> int:
        """Drop the tombstones older than the retention; how many there were."""
        return await Deletion.filter(deleted_at__lt=datetime.now(UTC) - self.retention).delete()
