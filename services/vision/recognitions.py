"""The recognitions vision keeps for admins, and their purge after the retention period.

Vision owns them because it is where they happen: the match distance and the liveness verdict
are its own findings, and its database already holds the subjects they name (deleting a subject
deletes its recognitions with it; so does deleting the account, services/vision/accounts.py).
Messaging knows who the display shows, but neither distances nor verdicts.

A mirror sends frames several times a second, so one row per frame would be thousands an hour
of the same person. A row is kept when a name appears at a mirror, when its liveness verdict
(``live``) or its trust changes, and at most every :data:`REPEAT` seconds while it stays. Each
worker decides for the frames it analyses: with several workers sharing a mirror's frames, a
person may be kept once per worker in a minute.

Rows older than the retention period (``MIRRORHUB_RETENTION_DAYS``) are deleted by every worker
every :meth:`Recognitions.purge_every` (an idempotent delete on the shared database), and the
list never answers one of them even between purges.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import BaseORMException

from broker.client import Bus
from schemas.errors import BusUnavailable
from schemas.recognitions import (
    VISION_RECOGNITION,
    Recognition,
    RecognitionsReply,
    RecognitionsRequest,
)
from schemas.vision import FaceResult
from services.vision import models

log = logging.getLogger(__name__)

REPEAT = 60.0  # seconds: at most one row per person and mirror while nothing changes
_PURGE_MAX = 3600.0  # seconds between purges, at most


def shown(row: models.Recognition) -> Recognition:
    return Recognition(id=row.id, at=row.at, mirror_id=row.mirror_id, name=row.name,
                       distance=row.distance, live=row.live, live_reason=row.live_reason,
                       trusted=row.trusted)


class Recognitions:
    """Keeps (:meth:`seen`), lists (:meth:`recent`, the ``svc/vision/recognitions`` handler)
    and purges (:meth:`purge_loop`, a service task) the recognitions."""

    def __init__(self, bus: Bus, retention: timedelta,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if retention <= timedelta(0):
            raise ValueError("the retention period must be positive")
        self.bus = bus
        self.retention = retention
        self.clock = clock
        # (mirror, name) -> when last kept and the (live, trusted) it was kept with.
        self._last: dict[tuple[str, str], tuple[float, bool | None, bool]] = {}

    @property
    def purge_every(self) -> float:
        """Seconds between purges: a tenth of the retention period, at most an hour."""
        return min(self.retention.total_seconds() / 10, _PURGE_MAX)

    async def seen(self, mirror_id: str, faces: list[FaceResult], trusted: list[str]) -> None:
        """Keep the named ``faces`` of one frame that are news (see the module docstring) and
        announce each on ``events/vision/recognition``. A database or broker failure is logged:
        a frame's recognition must not fail for its record."""
        now = self.clock()
        self._forget_before(now - REPEAT)
        for face in faces:
            if face.name is None:
                continue
            key = (mirror_id, face.name)
            verdict = (face.live, face.name in trusted)
            last = self._last.get(key)
            if last is not None and now - last[0] < REPEAT and last[1:] == verdict:
                continue
            self._last[key] = (now, *verdict)
            try:
                row = await models.Recognition.create(
                    at=datetime.now(UTC), mirror_id=mirror_id, name=face.name,
                    distance=face.distance, live=face.live,
                    live_reason=(face.live_reason or None) and face.live_reason[:200],
                    trusted=verdict[1])
                await self.bus.publish(VISION_RECOGNITION, shown(row), qos=0)
            except (BaseORMException, BusUnavailable, OSError) as exc:
                log.warning("vision: recognition of %s at %s not kept: %s", face.name,
                            mirror_id, exc)

    def _forget_before(self, then: float) -> None:
        if len(self._last) > 1024:  # keep memory to the people seen lately
            self._last = {key: value for key, value in self._last.items() if value[0] >= then}

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - self.retention

    async def recent(self, req: RecognitionsRequest) -> RecognitionsReply:
        query = models.Recognition.filter(at__gte=self._cutoff())
        if req.before is not None:
            query = query.filter(id__lt=req.before)
        rows = await query.order_by("-id").limit(req.limit)
        return RecognitionsReply(recognitions=[shown(row) for row in rows])

    async def purge(self) -> int:
        """Delete the rows older than the retention period; how many went."""
        return await models.Recognition.filter(at__lt=self._cutoff()).delete()

    async def forget(self, *names: str) -> None:
        """Delete every recognition of ``names`` (their subject or account is gone)."""
        await models.Recognition.filter(name__in=list(names)).delete()
        self._last = {key: value for key, value in self._last.items() if key[1] not in names}

    async def purge_loop(self) -> None:
        while True:
            try:
                gone = await self.purge()
                if gone:
                    log.info("vision: %d recognitions older than %s purged", gone,
                             self.retention)
            except (BaseORMException, OSError) as exc:
                log.warning("vision: purging old recognitions failed, next try later: %s", exc)
            await asyncio.sleep(self.purge_every)
