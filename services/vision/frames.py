"""Camera frames from mirrors: the newest frame per mirror wins, nothing queues without bound.

Each mirror has one slot. A frame that arrives while the previous one of the same mirror still
waits replaces it and is counted as dropped; the count goes out with the next event. One loop
analyses the waiting frames, mirrors taking turns, and publishes what it saw to
``mirrors/{mirror_id}/events/face`` and, when enrolled people were among the faces, the domain
event ``events/vision/recognized``. Memory is one frame per mirror at most, besides the faces
tracked at each mirror (services/vision/tracking.py).
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from datetime import UTC, datetime

from broker.client import Bus, Message
from broker.metrics import FRAMES_ANALYSED, FRAMES_DROPPED
from schemas.errors import BusUnavailable, ServiceError
from schemas.vision import (
    MIRROR_FACE_EVENT,
    VISION_RECOGNIZED,
    FaceEvent,
    Recognized,
    VisionError,
)
from services.vision.faces import Faces
from services.vision.recognitions import Recognitions
from services.vision.tracking import Tracking, TrackSettings
from services.vision.trust import trusted
from services.vision.watch import Mode

log = logging.getLogger(__name__)


class FrameQueue:
    """The latest unanalysed frame of each mirror, in the order mirrors first asked."""

    def __init__(self) -> None:
        self._frames: OrderedDict[str, bytes] = OrderedDict()
        self._dropped: dict[str, int] = {}
        self._ready = asyncio.Event()

    def put(self, mirror_id: str, frame: bytes) -> None:
        if mirror_id in self._frames:
            self._dropped[mirror_id] = self._dropped.get(mirror_id, 0) + 1
            FRAMES_DROPPED.inc()
        self._frames[mirror_id] = frame  # keeps the mirror's place in line
        self._ready.set()

    async def get(self) -> tuple[str, bytes, int]:
        """The next mirror's newest frame and how many of its frames were dropped."""
        while not self._frames:
            self._ready.clear()
            await self._ready.wait()
        mirror_id, frame = self._frames.popitem(last=False)
        return mirror_id, frame, self._dropped.pop(mirror_id, 0)

    def __len__(self) -> int:
        return len(self._frames)


class FrameWorker:
    """Each mirror's newest frame, recognised with the faces this worker tracks at that mirror
    (services/vision/tracking.py)."""

    def __init__(self, faces: Faces, bus: Bus, max_bytes: int,
                 tracks: TrackSettings | None = None,
                 recognitions: Recognitions | None = None) -> None:
        self.bus = bus
        self.recognitions = recognitions  # None keeps none
        self.max_bytes = max_bytes
        self.queue = FrameQueue()
        self.tracking = Tracking(faces, tracks or TrackSettings())

    async def on_frame(self, message: Message) -> None:
        mirror_id = message.params["mirror_id"]
        if len(message.payload) > self.max_bytes:
            error = ServiceError("too_large", f"frame of {len(message.payload)} bytes exceeds"
                                 f" the limit of {self.max_bytes}")
            await self._publish(FaceEvent(mirror_id=mirror_id, faces=[], error=error.to_body(),
                                          worker=self.bus.client_id))
            return
        self.queue.put(mirror_id, message.payload)

    async def run(self) -> None:
        while True:
            mirror_id, frame, dropped = await self.queue.get()
            FRAMES_ANALYSED.inc()
            try:
                event = await self._analyse(mirror_id, frame, dropped)
            except Exception:  # no frame may stop the loop
                log.exception("vision failed on a frame from mirror %s", mirror_id)
                continue
            await self._publish(event)

    async def _analyse(self, mirror_id: str, frame: bytes, dropped: int) -> FaceEvent:
        try:
            reply = await self.tracking.recognise(mirror_id, frame)
        except ServiceError as exc:
            # Nobody in front of the mirror is news, not an error; a bad frame is an error.
            error = None if exc.code == VisionError.NO_FACE else exc.to_body()
            return FaceEvent(mirror_id=mirror_id, faces=[], dropped=dropped, error=error,
                             worker=self.bus.client_id)
        return FaceEvent(mirror_id=mirror_id, faces=reply.faces, dropped=dropped,
                         worker=self.bus.client_id, distance=reply.distance)

    async def _publish(self, event: FaceEvent) -> None:
        try:
            await self.bus.publish(MIRROR_FACE_EVENT, event, qos=0, mirror_id=event.mirror_id)
            named = [face for face in event.faces if face.name is not None]
            if named:
                need_live = self.tracking.tracker.settings.liveness.mode is not Mode.OFF
                seen = Recognized(mirror_id=event.mirror_id,
                                  names=[face.name for face in named if face.name is not None],
                                  unknown=len(event.faces) - len(named), at=datetime.now(UTC),
                                  trusted=trusted(event.faces, need_live),
                                  live=[face.live for face in named],
                                  live_reasons=[face.live_reason for face in named])
                await self.bus.publish(VISION_RECOGNIZED, seen, qos=1)
                if self.recognitions is not None:
                    await self.recognitions.seen(event.mirror_id, named, seen.trusted)
        except BusUnavailable:
            log.warning("vision: event for mirror %s lost, broker unreachable", event.mirror_id)
