"""Overload on the embedded broker: QoS 0 camera frames are shed, the newest per mirror kept;
nothing else is ever dropped.

amqtt 0.12.1 puts every publish it receives on one unbounded ``asyncio.Queue`` in front of the
task that fans messages out, and starts one delivery task per subscriber per message. When
frames come faster than that task (or a subscriber) can take them, the queue holds them all: a
short overload run measured 4,446 frames (295 MB of payloads, all of tracemalloc's top entry)
waiting there after 12 s, growing ~25 MB a second (bench/README.md, the soak). Frames are QoS 0
and the next one replaces a lost one, so here

* a mirror's frame that arrives while its previous one still waits to be fanned out takes that
  one's place in the line (:class:`Backlog`): at most one frame per mirror waits, and at most
  :data:`FRAME_BACKLOG` mirrors' frames at once (a frame beyond that is shed);
* a subscriber that has :data:`SESSION_FRAMES` frame deliveries still being written is sent no
  more frames until it catches up (:class:`SheddingHandler`).

Only publishes on ``mirrors/+/frame`` received at QoS 0 and delivered at QoS 0 are shed; requests
(``svc/*``, QoS 1), replies, displays, events and frames sent at QoS 1 go through as amqtt
delivers them. What is shed is counted (:class:`Shed`) and logged at most once per
:data:`LOG_EVERY` seconds.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from contextvars import ContextVar
from typing import Any

from amqtt.mqtt.constants import QOS_0
from amqtt.mqtt.protocol.broker_handler import BrokerProtocolHandler
from amqtt.session import OutgoingApplicationMessage

from broker.metrics import FRAMES_SHED
from schemas.vision import MIRROR_FRAME

log = logging.getLogger(__name__)

FRAME_BACKLOG = 1000  # mirrors whose newest frame may wait to be fanned out at once
SESSION_FRAMES = 8  # frame deliveries being written to one subscriber at once
LOG_EVERY = 10.0  # seconds between two log lines about shed frames, at least

# The QoS a publish was received with, for the broadcast it becomes (amqtt passes it no further):
# set by the broker around each message a client sent, in that client's own task.
incoming_qos: ContextVar[int | None] = ContextVar("incoming_qos", default=None)


def is_frame(topic: str, namespace: str) -> bool:
    """Whether ``topic`` is a mirror's camera frame topic below ``namespace``."""
    return topic.startswith(namespace) and MIRROR_FRAME.parse(topic[len(namespace):]) is not None


class Shed:
    """How many frames were shed, by reason, since the broker started; logged now and then."""

    def __init__(self, every: float = LOG_EVERY) -> None:
        self.counts: Counter[str] = Counter()
        self._every = every
        self._logged = Counter[str]()
        self._last = time.monotonic()

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def note(self, reason: str) -> None:
        self.counts[reason] += 1
        FRAMES_SHED.labels(reason).inc()  # reasons are this module's own words: bounded
        now = time.monotonic()
        if now - self._last >= self._every:
            since = self.counts - self._logged
            log.warning("the broker is behind: shed %d camera frames in the last %.0f s (%s); "
                        "the newest frame of each mirror still goes out", since.total(),
                        now - self._last, ", ".join(f"{n} {why}" for why, n in since.items()))
            self._logged, self._last = Counter(self.counts), now


class Backlog(asyncio.Queue[dict[str, Any]]):
    """amqtt's broadcast queue, where a frame waits at most once per mirror (see the module
    docstring); everything else queues as in amqtt."""

    def __init__(self, shed: Shed, limit: int = FRAME_BACKLOG) -> None:
        super().__init__()
        self.shed = shed
        self.limit = limit
        self._frames: dict[str, dict[str, Any]] = {}  # topic -> its frame waiting in the queue

    @property
    def frames(self) -> int:
        """Frames waiting in the queue now."""
        return len(self._frames)

    def put_frame(self, broadcast: dict[str, Any]) -> None:
        """Queue a QoS 0 frame, or let it replace its mirror's frame still waiting."""
        waiting = self._frames.get(broadcast["topic"])
        if waiting is not None:
            waiting.update(broadcast)  # keeps the older frame's place in line
            self.shed.note("replaced by a newer frame")
        elif len(self._frames) >= self.limit:
            self.shed.note("backlog full")
        else:
            self._frames[broadcast["topic"]] = broadcast
            self.put_nowait(broadcast)

    def _get(self) -> dict[str, Any]:
        # asyncio.Queue's hook for get() and get_nowait(): the frame is out of the line now.
        broadcast: dict[str, Any] = super()._get()
        if self._frames.get(broadcast.get("topic") or "") is broadcast:
            del self._frames[broadcast["topic"]]
        return broadcast


class SheddingHandler(BrokerProtocolHandler):  # type: ignore[misc]  # amqtt ships no type hints
    """amqtt's broker-side protocol handler, sending one subscriber at most
    :data:`SESSION_FRAMES` QoS 0 frames at once (see the module docstring)."""

    shed: Shed | None = None  # set by the broker when the client is admitted
    namespace = ""
    frames_out = 0

    async def mqtt_publish(self, topic: str, data: bytes | bytearray, qos: int | None,
                           retain: bool, ack_timeout: int | None = None,
                           ) -> OutgoingApplicationMessage | None:
        if self.shed is None or qos != QOS_0 or not is_frame(topic, self.namespace):
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)
        if self.frames_out >= SESSION_FRAMES:
            self.shed.note("subscriber behind")
            return None
        self.frames_out += 1
        try:
            return await super().mqtt_publish(topic, data, qos, retain, ack_timeout)
        finally:
            self.frames_out -= 1
