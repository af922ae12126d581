"""The vision service's declaration: one row per ``svc/vision/*`` operation, the frames and
gallery events it follows, and what it says about faces."""

from __future__ import annotations

from broker.service import Handler, Listener, Service
from schemas.auth import AUTH_USER_DELETED, AUTH_USER_RENAMED
from schemas.export import VISION_EXPORT
from schemas.faces import (
    MIRROR_NOT_ME,
    VISION_CHANGE_SUBJECT,
    VISION_DELETE_SUBJECT,
    VISION_FIND,
    VISION_NOT_ME,
    VISION_REGISTER,
    VISION_SUBJECT,
    VISION_SUBJECT_CHANGED,
    VISION_SUBJECTS,
    VISION_THUMBNAIL,
)
from schemas.liveness import (
    VISION_CHALLENGE_USED,
    VISION_LIVENESS_CHALLENGE,
    VISION_LIVENESS_VERIFY,
)
from schemas.photos import VISION_KNOWN_PHOTOS
from schemas.recognitions import VISION_RECOGNITION, VISION_RECOGNITIONS
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
from services.vision.exports import export_faces
from services.vision.faces import Faces
from services.vision.frames import FrameWorker
from services.vision.measures import Measures
from services.vision.recognitions import Recognitions
from services.vision.subjects import Subjects
from services.vision.verification import Verifier

VISION = Service(
    "vision",
    handlers=(
        Handler(VISION_ENROL, Faces.enrol),
        Handler(VISION_RECOGNISE, Faces.recognise),
        Handler(VISION_KNOWN_PHOTOS, Faces.known_photos),
        Handler(VISION_EXPORT, export_faces),
        Handler(VISION_DISTANCE, Measures.distance),
        Handler(VISION_COLOUR, Measures.personal_color),
        # Seed 002's face admin API (schemas/faces.py).
        Handler(VISION_SUBJECTS, Subjects.subjects),
        Handler(VISION_SUBJECT, Subjects.subject),
        Handler(VISION_DELETE_SUBJECT, Subjects.delete_subject),
        Handler(VISION_CHANGE_SUBJECT, Subjects.change_subject),
        Handler(VISION_REGISTER, Subjects.register),
        Handler(VISION_FIND, Subjects.find),
        Handler(VISION_NOT_ME, Subjects.not_me),
        Handler(VISION_THUMBNAIL, Subjects.thumbnail),  # the admin page's (vision/crops.py)
        # Liveness over HTTP (schemas/liveness.py).
        Handler(VISION_LIVENESS_CHALLENGE, Verifier.challenge),
        Handler(VISION_LIVENESS_VERIFY, Verifier.verify),
        # The admin page's recent recognitions (schemas/recognitions.py).
        Handler(VISION_RECOGNITIONS, Recognitions.recent),
    ),
    listeners=(
        # Every worker hears every enrolment, to keep its in-memory gallery whole.
        Listener(VISION_ENROLLED, Faces.on_enrolled),
        # Frames are split between workers; QoS 0, since the next frame replaces a lost one.
        Listener(MIRROR_FRAME, FrameWorker.on_frame, qos=0, shared=True),
        # Every worker hears every deletion and rename too: each has a gallery to change.
        Listener(AUTH_USER_DELETED, Tombstones.on_deleted),
        Listener(AUTH_USER_RENAMED, Tombstones.on_renamed),
        # Every worker reloads a changed subject; one worker stores a mirror's "not me".
        Listener(VISION_SUBJECT_CHANGED, Subjects.on_subject_changed),
        Listener(MIRROR_NOT_ME, Subjects.on_not_me, shared=True),
        # Every worker hears every challenge taken, so that each is used once.
        Listener(VISION_CHALLENGE_USED, Verifier.on_used),
    ),
    tasks=(FrameWorker.run, Tombstones.catch_up, Recognitions.purge_loop, Faces.keep_in_step),
    publishes=(VISION_ENROLLED, MIRROR_FACE_EVENT, VISION_RECOGNIZED, VISION_SUBJECT_CHANGED,
               VISION_CHALLENGE_USED, VISION_RECOGNITION),
)
