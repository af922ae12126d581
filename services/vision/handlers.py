"""The vision service's declaration: one row per ``svc/vision/*`` operation, the frames and
gallery events it follows, and what it says about faces."""

from __future__ import annotations

from broker.service import Handler, Listener, Service
from schemas.auth import AUTH_USER_DELETED, AUTH_USER_RENAMED
from schemas.vision import (
    MIRROR_FACE_EVENT,
    MIRROR_FRAME,
    VISION_COLOUR,
    VISION_DISTANCE,
    VISION_ENROL,
    VISION_ENROLLED,
    VISION_RECOGNISE,
    VISION_RECOGNIZED,
)
from services.tombstones import Tombstones
from services.vision.faces import Faces
from services.vision.frames import FrameWorker
from services.vision.measures import Measures

VISION = Service(
    "vision",
    handlers=(
        Handler(VISION_ENROL, Faces.enrol),
        Handler(VISION_RECOGNISE, Faces.recognise),
        Handler(VISION_DISTANCE, Measures.distance),
        Handler(VISION_COLOUR, Measures.personal_color),
    ),
    listeners=(
        # Every worker hears every enrolment, to keep its in-memory gallery whole.
        Listener(VISION_ENROLLED, Faces.on_enrolled),
        # Frames are split between workers; QoS 0, since the next frame replaces a lost one.
        Listener(MIRROR_FRAME, FrameWorker.on_frame, qos=0, shared=True),
        # Every worker hears every deletion and rename too: each has a gallery to change.
        Listener(AUTH_USER_DELETED, Tombstones.on_deleted),
        Listener(AUTH_USER_RENAMED, Tombstones.on_renamed),
    ),
    tasks=(FrameWorker.run, Tombstones.catch_up),
    publishes=(VISION_ENROLLED, MIRROR_FACE_EVENT, VISION_RECOGNIZED),
)
