"""The topics the admin page added are internal: a mirror's account can neither ask for the
recognitions or log an admin out, nor hear recognitions or services' statuses (the embedded
broker's rules; Mosquitto's ACL file gives mirrors only mirrors/<id>/... as well)."""

from __future__ import annotations

from pathlib import Path

import pytest

from broker.server import EmbeddedBroker
from schemas.admins import AUTH_ADMIN_LOGOUT
from schemas.errors import AccessDenied
from schemas.recognitions import VISION_RECOGNITION, VISION_RECOGNITIONS
from schemas.service import SERVICE_STATUS
from tests.broker.test_access import Inbox, broker, bus

__all__ = ["broker"]  # the fixture, used by name


async def test_a_mirror_cannot_use_the_admin_pages_topics(
        broker: tuple[EmbeddedBroker, Path]) -> None:
    running, _ = broker
    seen = Inbox()
    async with bus(running, "svc", "svc-secret") as service, \
            bus(running, "hall", "hall-secret") as hall:
        await service.subscribe_raw("#", seen.put)
        for forbidden in (VISION_RECOGNITIONS.template, AUTH_ADMIN_LOGOUT.template,
                          VISION_RECOGNITION.template, "events/vision/status"):
            await hall.publish_raw(forbidden, b"{}", qos=1)
        await hall.publish_raw("mirrors/hall/frame", b"jpeg", qos=1)  # after them, on one link
        await seen.wait_for("mirrors/hall/frame")
        assert seen.topics == ["mirrors/hall/frame"]
        for heard in (VISION_RECOGNITION.filter, SERVICE_STATUS.filter):
            with pytest.raises(AccessDenied):
                await hall.subscribe_raw(heard, seen.put)
