"""A fleet of simulated mirrors from one process (``mirrorhub fleet``), checking their displays.

::

    plan = FleetPlan.checked(mirrors=100, fps=1, minutes=10, frames="people/")
    summary = await Fleet(plan, settings.device_buses(plan.mirror_ids)).run()
    print("\\n".join(summary.lines()))

Every mirror is a :class:`devices.mirror.Mirror` (its own broker account and client id, its own
``status`` with Last Will, its widgets, its camera), so the fleet speaks exactly the contracts a
single simulator does. The frames folder holds **one subfolder per person, named as that person
is enrolled**; mirror *i* plays the images of person *i* mod *P* in a loop. Each display a
mirror is told is checked against that person:

* **right**: it shows the person whose frames the mirror sent;
* **wrong**: it shows anybody else (a misrecognition, or another mirror's display);
* **idle**: nobody (before the first recognition, or when vision fell behind ``idle_after``);
* a mirror that never showed its person by the end is **missing**.

Latency is per mirror, from its first frame to its first right display. Displays stamped before
the mirror's camera started (retained from an earlier run) are not counted.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import signal
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from broker.settings import BusSettings
from devices.frames import FrameFolder, check_fps
from devices.mirror import Mirror, check_model_code
from mirrorhub.credentials import check_mirror_id
from schemas.errors import ConfigError
from schemas.messaging import Display

CONNECTING = 32  # mirrors connecting at once: a thousand CONNECTs in one burst time out
SETTLE = 10.0  # seconds after the last frame for displays still on their way
MAX_MIRRORS = 10_000
_LISTED = 5  # mirrors named per line of the summary


@dataclass(frozen=True)
class Person:
    """One subfolder of the frames folder: its name is who the frames show."""

    name: str
    frames: FrameFolder


def people_in(path: Path | str) -> tuple[Person, ...]:
    """The people of a frames folder, by name: each subfolder holding images is one. A folder
    without any is a :class:`~schemas.errors.ConfigError` saying the layout."""
    folder = Path(path)
    if not folder.is_dir():
        raise ConfigError(f"frames folder {folder} is not a folder")
    people = []
    for entry in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if not entry.is_dir():
            continue
        with contextlib.suppress(ConfigError):  # a subfolder without images is nobody
            people.append(Person(entry.name, FrameFolder.open(entry)))
    if not people:
        raise ConfigError(f"frames folder {folder} has no subfolder of images: it needs one "
                          "subfolder per person, named as that person is enrolled")
    return tuple(people)


@dataclass(frozen=True)
class FleetPlan:
    """What ``mirrorhub fleet`` was asked to do; build it with :meth:`checked`."""

    mirrors: int
    fps: float
    seconds: float
    people: tuple[Person, ...]
    model_code: str = "FLEET-1"
    prefix: str = "fleet"
    settle: float = SETTLE

    @classmethod
    def checked(cls, mirrors: int, fps: float, minutes: float, frames: Path | str, *,
                model_code: str = "FLEET-1", prefix: str = "fleet",
                settle: float = SETTLE) -> FleetPlan:
        """Every bad value is a :class:`~schemas.errors.ConfigError` saying which, before
        anything connects (the CLI's exit code 2)."""
        if not 1 <= mirrors <= MAX_MIRRORS:
            raise ConfigError(f"mirrors must be 1 to {MAX_MIRRORS}, got {mirrors}")
        if not 0 < minutes <= 24 * 60:  # also refuses NaN
            raise ConfigError(f"minutes must be more than 0 and at most a day, got {minutes:g}")
        plan = cls(mirrors=mirrors, fps=check_fps(fps), seconds=minutes * 60,
                   people=people_in(frames), model_code=check_model_code(model_code),
                   prefix=prefix, settle=settle)
        for mirror_id in (plan.mirror_id(0), plan.mirror_id(mirrors - 1)):
            check_mirror_id(mirror_id)  # the prefix makes every id alike
        return plan

    def mirror_id(self, index: int) -> str:
        return f"{self.prefix}-{index:04d}"

    @property
    def mirror_ids(self) -> list[str]:
        return [self.mirror_id(index) for index in range(self.mirrors)]

    def person(self, index: int) -> Person:
        return self.people[index % len(self.people)]


@dataclass
class Tally:
    """One mirror's displays, checked against the person whose frames it sends."""

    mirror_id: str
    expected: str
    camera_on: float | None = None  # monotonic time of its first frame
    camera_on_at: datetime | None = None  # the same on the wall clock, to compare with displays
    first_right: float | None = None
    right: int = 0
    wrong: Counter[str] = field(default_factory=Counter)  # by who was shown instead
    idle: int = 0

    def displayed(self, display: Display, now: float) -> None:
        if self.camera_on_at is None or display.at < self.camera_on_at:
            return  # retained from before this run's frames: no answer to them
        if display.user is None:
            self.idle += 1
        elif display.user == self.expected:
            self.right += 1
            if self.first_right is None:
                self.first_right = now
        else:
            self.wrong[display.user] += 1

    @property
    def latency(self) -> float | None:
        if self.first_right is None or self.camera_on is None:
            return None
        return self.first_right - self.camera_on


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.5 for the median) of a non-empty sequence."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass(frozen=True)
class Summary:
    """What the fleet did and what its mirrors were told (see the module docstring)."""

    mirrors: int
    people: int
    seconds: float  # of streaming frames
    fps: float
    frames: int
    right: int
    wrong: int
    idle: int
    missing: tuple[str, ...]
    wrong_shown: tuple[tuple[str, str, str, int], ...]  # mirror, expected, shown, times
    latencies: tuple[float, ...]
    connected_in: float = 0.0  # seconds until every mirror was online

    @classmethod
    def of(cls, plan: FleetPlan, tallies: Sequence[Tally], frames: int, seconds: float,
           connected_in: float = 0.0) -> Summary:
        return cls(connected_in=connected_in,
            mirrors=len(tallies), people=len(plan.people), seconds=seconds, fps=plan.fps,
            frames=frames, right=sum(t.right for t in tallies),
            wrong=sum(t.wrong.total() for t in tallies), idle=sum(t.idle for t in tallies),
            missing=tuple(t.mirror_id for t in tallies if t.first_right is None),
            wrong_shown=tuple((t.mirror_id, t.expected, shown, times) for t in tallies
                              for shown, times in t.wrong.most_common()),
            latencies=tuple(t.latency for t in tallies if t.latency is not None),
        )

    @property
    def ok(self) -> bool:
        """No display was wrong and every mirror showed its person at least once."""
        return self.wrong == 0 and not self.missing

    def latency(self) -> dict[str, float]:
        """p50, p90, p99 and max of the latencies in seconds; empty when nobody was shown."""
        if not self.latencies:
            return {}
        shares = {"p50": 0.5, "p90": 0.9, "p99": 0.99, "max": 1.0}
        return {name: round(percentile(self.latencies, share), 3)
                for name, share in shares.items()}

    def lines(self) -> list[str]:
        """The summary for people, a few lines."""
        lines = [
            f"fleet: {self.mirrors} mirrors (online in {self.connected_in:.1f} s), "
            f"{self.people} people, {self.seconds:.0f} s at {self.fps:g} fps: "
            f"{self.frames} frames sent",
            f"displays: {self.right} right, {self.wrong} wrong, {len(self.missing)} missing "
            f"(never showed their person), {self.idle} idle",
        ]
        if self.latencies:
            figures = ", ".join(f"{name} {value:.2f} s" for name, value in self.latency().items())
            lines.append(f"latency, first frame to the right display: {figures} "
                         f"({len(self.latencies)} mirrors)")
        for mirror_id, expected, shown, times in self.wrong_shown[:_LISTED]:
            lines.append(f"wrong: {mirror_id} showed {shown} {times}x, its frames are {expected}")
        if self.missing:
            more = len(self.missing) - _LISTED
            listed = ", ".join(self.missing[:_LISTED]) + (f" and {more} more" if more > 0 else "")
            lines.append(f"missing: {listed}")
        return lines

    def as_json(self) -> dict[str, Any]:
        """The summary for programs: the counts, the missing mirrors and the latency figures."""
        return {"mirrors": self.mirrors, "people": self.people, "seconds": self.seconds,
                "fps": self.fps, "connected_in": round(self.connected_in, 3),
                "frames": self.frames, "right": self.right,
                "wrong": self.wrong, "idle": self.idle, "missing": list(self.missing),
                "latency": self.latency(), "ok": self.ok}


DisplayHook = Callable[[str, str, Display], object]  # mirror id, its person, the display


class Fleet:
    """The mirrors of ``plan``, each reaching the broker with ``buses[mirror_id]`` (its own
    account: :meth:`mirrorhub.settings.Settings.device_buses`). ``on_display`` also hears every
    display (the soak checks the messages on them)."""

    def __init__(self, plan: FleetPlan, buses: Mapping[str, BusSettings], *,
                 on_display: DisplayHook | None = None) -> None:
        self.plan = plan
        self.buses = buses
        self.on_display = on_display
        self.tallies = [Tally(plan.mirror_id(i), plan.person(i).name)
                        for i in range(plan.mirrors)]
        self._mirrors: list[Mirror] = []

    @property
    def frames_sent(self) -> int:
        return sum(mirror.frames_sent for mirror in self._mirrors)

    async def run(self, stop: asyncio.Event | None = None) -> Summary:
        """Connect every mirror, stream for the plan's time (or until ``stop``), give late
        displays :attr:`FleetPlan.settle` seconds, say goodbye and sum up."""
        stop = stop or asyncio.Event()
        stopped = asyncio.create_task(stop.wait())
        try:
            connecting = time.monotonic()
            await self._connect()
            connected_in = time.monotonic() - connecting
            cameras = [asyncio.create_task(self._camera(i)) for i in range(self.plan.mirrors)]
            streaming = time.monotonic()
            try:
                await asyncio.wait([stopped], timeout=self.plan.seconds)
            finally:
                seconds = time.monotonic() - streaming
                for task in cameras:
                    task.cancel()
                ended = await asyncio.gather(*cameras, return_exceptions=True)
            for outcome in ended:  # e.g. a frame that cannot be read any more: the run ends
                if isinstance(outcome, Exception):
                    raise outcome
            if not stop.is_set():
                await self._settle(stopped)
        finally:
            stopped.cancel()
            # All at once: one after the other, a thousand goodbyes to a busy broker (each
            # waiting up to its timeout) would take longer than the run.
            await asyncio.gather(*(mirror.__aexit__(None, None, None)
                                   for mirror in self._mirrors), return_exceptions=True)
        return Summary.of(self.plan, self.tallies, self.frames_sent, seconds, connected_in)

    async def _connect(self) -> None:
        """Every mirror online, :data:`CONNECTING` at a time; each one that connected is in
        :attr:`_mirrors` (to be closed) even when another failed, whose error is raised."""
        gate = asyncio.Semaphore(CONNECTING)

        async def connect(index: int) -> None:
            async with gate:
                mirror = self._mirror(index)
                await mirror.__aenter__()
                self._mirrors.append(mirror)

        outcomes = await asyncio.gather(*(connect(i) for i in range(self.plan.mirrors)),
                                        return_exceptions=True)
        self._mirrors.sort(key=lambda mirror: mirror.mirror_id)  # index order, for _camera
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                raise outcome

    def _mirror(self, index: int) -> Mirror:
        tally = self.tallies[index]

        def heard(display: Display) -> None:
            tally.displayed(display, time.monotonic())
            if self.on_display is not None:
                self.on_display(tally.mirror_id, tally.expected, display)

        return Mirror(self.buses[tally.mirror_id], tally.mirror_id, self.plan.model_code,
                      on_display=heard)

    async def _camera(self, index: int) -> None:
        # Cameras start at random points of one frame period, so frames do not come in waves.
        await asyncio.sleep(random.uniform(0, 1 / self.plan.fps))
        tally = self.tallies[index]
        tally.camera_on, tally.camera_on_at = time.monotonic(), datetime.now(UTC)
        await self._mirrors[index].stream_frames(self.plan.person(index).frames, self.plan.fps)

    async def _settle(self, stopped: asyncio.Task[bool]) -> None:
        deadline = time.monotonic() + self.plan.settle
        while any(t.first_right is None for t in self.tallies) and not stopped.done():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.wait([stopped], timeout=min(left, 0.1))


async def play(plan: FleetPlan, buses: Mapping[str, BusSettings],
               output: Callable[[Summary], object]) -> int:
    """``mirrorhub fleet``: run the fleet until its time is up or SIGINT/SIGTERM (which still
    sums up), hand the summary to ``output``; exit code 0 when :attr:`Summary.ok`,
    else 1."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    try:
        summary = await Fleet(plan, buses).run(stop)
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(signum)
    output(summary)
    return 0 if summary.ok else 1
