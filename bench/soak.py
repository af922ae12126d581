"""The soak: many simulated mirrors for minutes on the embedded broker, memory flat, nothing lost.

::

    make soak                                          # 100 mirrors, 10 minutes, 1 fps
    python -m bench.soak --mirrors 10 --minutes 0.5    # the short one tests/test_soak.py runs

``mirrorhub up`` (the embedded amqtt broker, SQLite, the three services and the bridge) runs in
a **child process**, liveness off (the cameras show still photos); the fleet
(:mod:`devices.fleet`, each mirror with its own device account) and this harness run in this
one. Three people of the shared test photos are registered and enrolled with their tokens, so
their faces unlock their messages; mirror *i* shows person *i* mod 3, at 640 px like a mirror
camera. While the fleet runs, a message goes to one of the people every ``--message-every``
seconds over HTTP (``POST /send_message``); sending stops a quarter of the run (at most 30 s)
before the end, so the last ones have time to be shown.

It prints the figures and fails (exit code 1) when

* any process's memory grew more than 10% over the last half: the median RSS of the run's last
  tenth against that of the tenth after its middle (the first half is warm-up);
* any message was lost: each one sent must appear on a display of a mirror showing its
  receiver, and on no display of anybody else; one the bridge refused (503, "NOT sent") is sent
  again with the same Idempotency-Key, and one never taken by the end of sending fails too;
* any display was wrong, or a mirror never showed its person (:class:`devices.fleet.Summary`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import uvloop

from bench.processes import PASSWORD, Meter, camera_frames, enrol_people, up
from devices.fleet import Fleet, FleetPlan, Summary
from mirrorhub.settings import Settings
from schemas.messaging import Display

MAX_GROWTH = 0.10
SENDER = "soak_sender"


@dataclass
class Post:
    """The messages sent, and where each was seen."""

    sent: dict[str, str] = field(default_factory=dict)  # content -> receiver
    shown: set[str] = field(default_factory=set)  # contents seen on their receiver's display
    elsewhere: set[str] = field(default_factory=set)  # seen on somebody else's display
    retries: int = 0  # sends refused (503) and made again
    unsent: list[str] = field(default_factory=list)  # still refused when sending stopped

    def heard(self, mirror_id: str, expected: str, display: Display) -> None:
        for message in display.messages:
            receiver = self.sent.get(message.content)
            if receiver is None:
                continue
            (self.shown if receiver == display.user else self.elsewhere).add(message.content)

    @property
    def lost(self) -> list[str]:
        return [content for content in self.sent if content not in self.shown]


async def send_messages(http: httpx.AsyncClient, post: Post, people: list[str], every: float,
                        until: float) -> None:
    """One message every ``every`` seconds until ``until``, to the people in turn. A refused
    one (the documented 503 "the message was NOT sent") is sent again with the same
    Idempotency-Key, as a client should, until it is stored or ``until`` passes."""
    count = 0
    while time.monotonic() + every < until:
        await asyncio.sleep(every)
        receiver = people[count % len(people)]
        content = f"soak message {count} for {receiver}"
        post.sent[content] = receiver  # before sending: a display can come before the reply
        form = {"sender_username": SENDER, "receiver_username": receiver, "content": content}
        headers = {"Idempotency-Key": f"soak-{count}"}
        while (await http.post("/send_message", data=form, headers=headers)
               ).json().get("result") != "success":
            post.retries += 1
            if time.monotonic() >= until:
                post.unsent.append(content)
                del post.sent[content]
                break
            await asyncio.sleep(1)
        count += 1


async def sample(meter: Meter, every: float) -> None:
    while True:
        meter.sample()
        await asyncio.sleep(every)


@dataclass(frozen=True)
class Memory:
    label: str
    middle: int
    end: int
    peak: int
    cpu: float  # cores, over the run

    @property
    def growth(self) -> float:
        return self.end / self.middle - 1


def memory(meter: Meter, started: float, ended: float, cpu: dict[str, float]) -> list[Memory]:
    """Each process's median RSS in the tenth after the middle and in the last tenth."""
    tenth = (ended - started) / 10
    middle = started + 5 * tenth
    figures = []
    for label, samples in meter.rss.items():
        mid = [rss for at, rss in samples if middle <= at < middle + tenth]
        end = [rss for at, rss in samples if at >= ended - tenth]
        if mid and end:
            figures.append(Memory(label, int(statistics.median(mid)), int(statistics.median(end)),
                                  max(rss for _, rss in samples), cpu.get(label, 0.0)))
    return figures


def report(summary: Summary, post: Post, figures: list[Memory], minutes: float) -> list[str]:
    """The figures as printed, and last the verdict (``PASS`` or ``FAIL: why``)."""
    lines = [f"soak: {summary.mirrors} mirrors for {minutes:g} min at {summary.fps:g} fps on "
             "the embedded broker (mirrorhub up in a child process, the fleet in this one)",
             *summary.lines(),
             f"messages: {len(post.sent)} sent, {len(post.shown)} shown to their receiver, "
             f"{len(post.lost)} lost, {len(post.elsewhere)} on another person's display; "
             f"{post.retries} sends refused and made again, {len(post.unsent)} never taken",
             "",
             "| process | RSS after the middle | RSS at the end | growth | peak | CPU (cores) |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {f.label} | {f.middle / 2**20:.1f} MB | {f.end / 2**20:.1f} MB | "
              f"{f.growth:+.1%} | {f.peak / 2**20:.1f} MB | {f.cpu:.2f} |" for f in figures]
    why = [f"{f.label} grew {f.growth:+.1%}" for f in figures if f.growth > MAX_GROWTH]
    if post.lost:
        why.append(f"{len(post.lost)} messages lost, e.g. {post.lost[0]!r}")
    if post.unsent:
        why.append(f"{len(post.unsent)} messages never taken by /send_message")
    if post.elsewhere:
        why.append(f"{len(post.elsewhere)} messages on another person's display")
    if not figures:
        why.append("no memory figures (the run was too short to sample)")
    if summary.wrong or summary.missing:
        why.append(f"{summary.wrong} wrong displays, {len(summary.missing)} mirrors missing")
    return [*lines, "", "PASS" if not why else "FAIL: " + "; ".join(why)]


async def soak(mirrors: int, minutes: float, fps: float, message_every: float,
               work: Path) -> list[str]:
    async with up(work) as backend, httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
        await enrol_people(http)
        await http.post("/register/user", data={"username": SENDER, "password": PASSWORD,
                                                "email": "sender@soak.invalid"})
        plan = FleetPlan.checked(mirrors, fps, minutes, camera_frames(work / "frames"),
                                 prefix="soak")
        settings = Settings(data_dir=backend.data_dir, external_broker=None,
                            broker_host="127.0.0.1", broker_port=backend.broker_port,
                            allow_anonymous=False, bridge_host="127.0.0.1", bridge_port=0)
        post = Post()
        fleet = Fleet(plan, settings.device_buses(plan.mirror_ids), on_display=post.heard)
        meter = Meter(backend.process.pid, "mirrorhub up", (os.getpid(), "fleet (this process)"))
        cpu_start = meter.cpu_seconds()
        started = time.monotonic()
        ended = started + plan.seconds
        quiet = min(30.0, plan.seconds / 4)
        running = asyncio.create_task(fleet.run())
        sampling = asyncio.create_task(sample(meter, max(1.0, plan.seconds / 120)))
        sending = asyncio.create_task(send_messages(
            http, post, [person.name for person in plan.people], message_every, ended - quiet))
        try:
            summary = await running
            await sending
        finally:
            sampling.cancel()
            sending.cancel()
        cpu_end = meter.cpu_seconds()
        wall = time.monotonic() - started
        cpu = {label: (seconds - cpu_start.get(label, 0.0)) / wall
               for label, seconds in cpu_end.items()}
        return report(summary, post, memory(meter, started, ended, cpu), minutes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mirrors", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--fps", type=float, default=1.0, help="per mirror (default 1)")
    parser.add_argument("--message-every", type=float, default=5.0, metavar="SECONDS")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mirrorhub-soak-") as work:
        lines = uvloop.run(soak(args.mirrors, args.minutes, args.fps, args.message_every,
                                Path(work)))
    print("\n".join(lines), flush=True)
    return 0 if lines[-1] == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
