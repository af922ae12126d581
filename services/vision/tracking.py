"""Faces tracked across a mirror's frames, so that a face keeps its embedding from frame to frame.

On a mirror's stream the descriptor is most of a frame's cost (dlib, 640x360: decode 1 ms,
detection 15 ms, landmarks 0.4 ms, descriptor 80 ms a face), and from one frame to the next the
face in front of the mirror is nearly always the same. So each worker keeps, per mirror, a
track for each face it saw: its box, landmark shape, face chip and embedding.
:func:`services.vision.sightings.follow` looks for the tracked faces in the new frame and
computes a descriptor only for a face that continues no track, fails the checks there, or whose
track's embedding is older than :attr:`TrackSettings.refresh` seconds. Landmarks are found on
every frame (liveness reads them), and every face is named on every frame by the gallery, from
its track's embedding: a name removed from the gallery is gone at the next frame, and whatever
the gallery says of a match rides along as for a single photo.

While faces are tracked, the detector scans only around them (sightings.py), and the whole
frame every :attr:`TrackSettings.scan` seconds: somebody who joins a tracked face in front of
the mirror is found up to that much later than on a frame analysed alone.

A track never spans two people: when a face that continues a track gets a new descriptor, the
tracker compares it with the track's embedding, and beyond the gallery's threshold (the
distance that separates two people) the old track ends and a new one starts.

Tracks are this worker's alone, kept per mirror, and cost nothing to lose: a frame of a mirror
without tracks here (the first frame, or one that ``$share`` sent to this worker while the
track lives in another) is analysed as any frame was before tracking and starts tracks. They
are bounded: at most :attr:`TrackSettings.max_tracks` per mirror (the least recently seen goes)
and :attr:`TrackSettings.max_mirrors` mirrors (the least recently seen mirror goes); a track
missing from a frame and not seen for :attr:`TrackSettings.expire` seconds is forgotten, and
so is a mirror without tracks. A track whose face was on the mirror's last frame waits for the
next one up to :attr:`TrackSettings.linger` seconds: a busy worker sees a frame a second or
less often, and its tracks would otherwise end between any two frames.

A face the boxes pair with no track, but whose embedding (it has one: it continues no track)
is within the gallery's threshold of a track that no face of the frame continues, rejoins that
track (the nearest): the face moved too far between the frames analysed for the boxes to
overlap, as a head turning does when a busy worker sees one frame in six, or a clip looped
by the simulator starts over. It keeps its track's liveness evidence, which is the same
person's. A track holds about 3.5 KB, so the bounds keep a worker's tracks under 30 MB.

The tracker is not thread-safe, and expects one frame of a mirror at a time between
:meth:`Tracker.plan` and :meth:`Tracker.update`, as :class:`~services.vision.frames.FrameWorker`
analyses frames.
"""

from __future__ import annotations

import itertools
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from schemas.errors import ConfigError
from schemas.vision import RecogniseReply
from services.vision.engine import DetectedFace, Embedding, LocatedFace
from services.vision.sightings import Chip, FaceChecks, Followed, Hint, Plan, Shape
from services.vision.watch import Liveness, LivenessSettings, Watch

if TYPE_CHECKING:  # faces.py imports analysis.py, which imports config.py, which imports this
    from services.vision.faces import Faces

Clock = Callable[[], float]
"""Seconds on a clock that never goes back (:func:`time.monotonic`)."""


@dataclass(frozen=True)
class TrackSettings:
    """``refresh``: seconds before a track's embedding is computed again, 0 for every frame
    (``MIRRORHUB_VISION_TRACK_REFRESH``); ``scan``: seconds between whole-frame scans while
    faces are tracked, so newcomers are found; ``expire``: seconds a track outlives its face
    once a frame came without it;
    ``linger``: seconds a track whose face was on the mirror's last frame analysed waits for
    the next, however long the worker took (a busy worker may see a frame a second or less);
    ``liveness``: how each track shows it is live (services/vision/watch.py)."""

    refresh: float = 2.0
    scan: float = 0.25
    expire: float = 1.0
    linger: float = 5.0
    max_tracks: int = 8
    max_mirrors: int = 1024
    checks: FaceChecks = field(default_factory=FaceChecks)
    liveness: LivenessSettings = field(default_factory=LivenessSettings)

    def __post_init__(self) -> None:
        if self.refresh < 0 or self.scan < 0 or not 0 < self.expire <= self.linger:
            raise ConfigError("track refresh and scan must not be negative, expire positive"
                              " and linger no shorter")
        if self.max_tracks < 1 or self.max_mirrors < 1:
            raise ConfigError("a worker tracks at least one face of at least one mirror")


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """A face of the frame with the embedding it is named by; ``embedded``: computed on this
    frame rather than kept from its track's earlier frames; ``liveness``: what its track has
    shown so far."""

    face: DetectedFace
    track: int
    embedded: bool
    liveness: Liveness


@dataclass
class TrackStats:
    """Counts since the tracker started, for tests and benchmarks."""

    frames: int = 0
    faces: int = 0
    embedded: int = 0  # descriptors computed
    started: int = 0  # tracks started, including those split off another
    rejoined: int = 0  # faces that continued a track by their embedding, not their box


@dataclass(frozen=True, eq=False)
class Planned:
    """A frame's :class:`Plan` and what the tracker needs back in :meth:`Tracker.update`."""

    mirror_id: str
    at: float
    tracks: tuple[_Track, ...]  # the track of each hint, in the plan's order
    plan: Plan


@dataclass(eq=False)
class _Track:
    id: int
    face: LocatedFace
    shape: Shape | None
    chip: Chip | None
    embedding: Embedding
    embedded_at: float
    seen_at: float
    watch: Watch
    first: Embedding | None = None  # the embedding it started with (set in __post_init__)

    def __post_init__(self) -> None:
        if self.first is None:
            self.first = self.embedding

    def distance(self, embedding: Embedding) -> float:
        """How far ``embedding`` is from this track's person: the nearer of its first and its
        latest embedding. A head turned far from the camera and back can move dlib's
        descriptor by the threshold itself (0.61 on the Hamilton clip between frames 127 and
        151), so the latest alone would split one person's track in two."""
        assert self.first is not None
        return min(float(np.linalg.norm(embedding - self.embedding)),
                   float(np.linalg.norm(embedding - self.first)))


@dataclass(eq=False)
class _Mirror:
    tracks: list[_Track] = field(default_factory=list)
    frame_at: float = -np.inf  # the last frame
    scanned_at: float = -np.inf  # the last whole-frame scan
    size: tuple[int, int] | None = None  # of the last frame

    def showed(self, track: _Track) -> bool:
        """Whether ``track``'s face was on this mirror's last frame analysed."""
        return track.seen_at >= self.frame_at


class Tracker:
    """The tracks of every mirror this worker sees frames of (see the module docstring).

    ``same_person`` is the embedding distance within which a renewed descriptor still belongs
    to its track's person: the gallery's recognition threshold.
    """

    def __init__(self, settings: TrackSettings, same_person: float,
                 clock: Clock = time.monotonic) -> None:
        self.settings = settings
        self.same_person = same_person
        self.clock = clock
        self.stats = TrackStats()
        self._mirrors: OrderedDict[str, _Mirror] = OrderedDict()
        self._ids = itertools.count(1)

    def __len__(self) -> int:
        """How many mirrors have tracks here."""
        return len(self._mirrors)

    def tracks(self, mirror_id: str) -> int:
        """How many faces of ``mirror_id`` are tracked."""
        mirror = self._mirrors.get(mirror_id)
        return len(mirror.tracks) if mirror else 0

    def plan(self, mirror_id: str) -> Planned:
        """What the next frame of ``mirror_id`` is to be analysed with."""
        now = self.clock()
        settings = self.settings
        mirror = self._mirrors.get(mirror_id) or _Mirror()
        mirror.tracks = [track for track in mirror.tracks if self._alive(track, mirror, now)]
        hints = tuple(Hint(track.face.box, track.shape, track.chip,
                           due=now - track.embedded_at >= settings.refresh,
                           present=mirror.showed(track))
                      for track in mirror.tracks)
        scan_all = not hints or now - mirror.scanned_at >= settings.scan
        return Planned(mirror_id, now, tuple(mirror.tracks),
                       Plan(hints, scan_all, mirror.size, settings.checks))

    def update(self, planned: Planned, followed: Followed) -> list[TrackedFace]:
        """Carry the frame's sightings into the mirror's tracks; each face with the embedding
        it is to be named by, largest first."""
        now, settings = planned.at, self.settings
        mirror = self._mirror(planned.mirror_id)
        if followed.size != mirror.size:
            mirror.tracks, mirror.size = [], followed.size
        tracked = []
        # Tracks a face of this frame continues by its box; the others may be rejoined.
        taken = {planned.tracks[sighting.follows] for sighting in followed.sightings
                 if sighting.follows is not None}
        for sighting in followed.sightings:
            follows = sighting.follows
            track = planned.tracks[follows] if follows is not None else None
            embedding = sighting.embedding
            if track is not None and embedding is not None and self._other(track, embedding):
                # Somebody else stands where the track's face was: that track is over.
                if track in mirror.tracks:
                    mirror.tracks.remove(track)
                track = None
            if track is None:
                assert embedding is not None, "a face that continues no track has its embedding"
                track = self._rejoined(planned, mirror, embedding, taken)
                if track is None:
                    track = _Track(next(self._ids), sighting.face, sighting.shape, sighting.chip,
                                   embedding, now, now, Watch(settings.liveness, now))
                    self.stats.started += 1
                else:
                    self.stats.rejoined += 1
            if embedding is not None:
                track.embedding, track.embedded_at = embedding, now
            taken.add(track)
            if track not in mirror.tracks:  # new, or dropped while the frame was analysed
                mirror.tracks.append(track)
            track.face, track.shape, track.chip, track.seen_at = (
                sighting.face, sighting.shape, sighting.chip, now)
            tracked.append(TrackedFace(sighting.face.embedded(track.embedding), track.id,
                                       embedding is not None,
                                       track.watch.see(sighting.face, now, sighting.spoof)))
        mirror.frame_at = now
        if followed.scanned_all:
            mirror.scanned_at = now
        if len(mirror.tracks) > settings.max_tracks:
            mirror.tracks.sort(key=lambda track: track.seen_at, reverse=True)
            del mirror.tracks[settings.max_tracks:]
        self._forget_stale(now)
        self.stats.frames += 1
        self.stats.faces += len(tracked)
        self.stats.embedded += sum(face.embedded for face in tracked)
        return tracked

    def _rejoined(self, planned: Planned, mirror: _Mirror, embedding: Embedding,
                  taken: set[_Track]) -> _Track | None:
        """The track, of the mirror's that no face of this frame continues, whose person this
        face is by its embedding (the nearest within ``same_person``), though the boxes do not
        overlap: the face moved far between two frames analysed, as it does when a busy worker
        sees one frame in several, or a looped clip starts over."""
        near = [(distance, track) for track in planned.tracks
                if track not in taken and track in mirror.tracks
                and (distance := track.distance(embedding)) <= self.same_person]
        return min(near, key=lambda pair: pair[0])[1] if near else None

    def _other(self, track: _Track, embedding: Embedding) -> bool:
        return track.distance(embedding) > self.same_person

    def _mirror(self, mirror_id: str) -> _Mirror:
        """The mirror's tracks, made the most recently seen; the least recently seen mirror
        goes when there are too many."""
        mirror = self._mirrors.pop(mirror_id, None) or _Mirror()
        self._mirrors[mirror_id] = mirror
        while len(self._mirrors) > self.settings.max_mirrors:
            self._mirrors.popitem(last=False)
        return mirror

    def _alive(self, track: _Track, mirror: _Mirror, now: float) -> bool:
        """Whether ``track`` is still kept (:attr:`TrackSettings.expire` and ``linger``)."""
        age = now - track.seen_at
        return age <= self.settings.expire or (mirror.showed(track)
                                               and age <= self.settings.linger)

    def _forget_stale(self, now: float) -> None:
        """Drop mirrors from the least recently seen end while all their tracks expired."""
        while self._mirrors:
            mirror_id, oldest = next(iter(self._mirrors.items()))
            if any(self._alive(track, oldest, now) for track in oldest.tracks):
                break
            del self._mirrors[mirror_id]


class Tracking:
    """The frames path's recognition: :meth:`Faces.named` on the embeddings a mirror's tracks
    keep, with the analysis of :attr:`Faces.analysis` (a worker process, or a thread)."""

    def __init__(self, faces: Faces, settings: TrackSettings,
                 clock: Clock = time.monotonic) -> None:
        self.faces = faces
        self.tracker = Tracker(settings, faces.gallery.threshold, clock)

    async def recognise(self, mirror_id: str, frame: bytes) -> RecogniseReply:
        """What :meth:`Faces.recognise` answers for ``frame``, descriptors saved where the
        mirror's tracks allow."""
        planned = self.tracker.plan(mirror_id)
        followed = await self.faces.analysis.follow(frame, planned.plan)
        tracked = self.tracker.update(planned, followed)
        reply = self.faces.named([face.face for face in tracked])
        reply.faces = [result.model_copy(update={"live": face.liveness.live,
                                                 "live_reason": face.liveness.reason,
                                                 "challenge": face.liveness.prompt})
                       for result, face in zip(reply.faces, tracked, strict=True)]
        return reply
