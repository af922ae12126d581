"""What a mirror costs: memory and CPU per simulated mirror, 100 and 1,000 of them, on the
embedded amqtt broker and on Mosquitto.

::

    python -m bench.fleet_cost                                   # the table in bench/README.md
    python -m bench.fleet_cost --mirrors 100 --brokers amqtt --window 30

Each row is one run of the whole system: ``mirrorhub up`` in a child process (three people of
the shared photos enrolled, liveness off), and ``mirrorhub fleet`` in another, every mirror at
``--fps`` with its own account (amqtt) or in a topic namespace of the run's own (Mosquitto).
Mosquitto is a private one on a free port (Debian's ``mosquitto``), so that its figures are
this run's alone; with it, ``mirrorhub up`` runs the services and the bridge only.

After ``--warmup`` seconds (every mirror connected, frames flowing) each process is measured for
``--window`` seconds: RSS (median of the window's samples, less the process's RSS before the
fleet came, for the backend) and CPU (cores used during the window). Per mirror is the total
divided by the mirrors; the last lines give the marginal cost of a mirror between the two
sizes, which leaves out what a process costs with no mirror at all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvloop

from bench.processes import (
    Meter,
    camera_frames,
    die_with_parent,
    enrol_people,
    free_port,
    mirrorhub,
    stop,
    up,
)

MOSQUITTO = "/usr/sbin/mosquitto"
MB = 2**20


@contextlib.asynccontextmanager
async def broker(kind: str, work: Path) -> AsyncIterator[tuple[dict[str, str], int | None]]:
    """The ``MIRRORHUB_*`` settings that point ``mirrorhub up`` and the fleet at ``kind``'s
    broker, and the pid of a broker process of its own (None: amqtt, inside ``up``)."""
    if kind == "amqtt":
        yield {}, None
        return
    port = free_port()
    config = work / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                      "log_dest none\nmax_queued_messages 1000\n")
    process = subprocess.Popen([MOSQUITTO, "-c", str(config)], preexec_fn=die_with_parent,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await asyncio.sleep(0.5)
        if process.poll() is not None:
            raise RuntimeError(f"mosquitto did not start (exit code {process.returncode})")
        yield ({"MIRRORHUB_BROKER_URL": f"mqtt://127.0.0.1:{port}",
                "MIRRORHUB_TOPIC_NAMESPACE": f"bench-{uuid.uuid4().hex[:8]}/"}, process.pid)
    finally:
        stop(process)


@dataclass(frozen=True)
class Row:
    broker: str
    mirrors: int
    fps: float
    rss: dict[str, float]  # MB: the broker's, the services', vision's, the fleet's
    cpu: dict[str, float]  # cores, same keys
    fleet: dict[str, object]  # mirrorhub fleet --json

    @property
    def backend_rss(self) -> float:
        return sum(v for k, v in self.rss.items() if k != "fleet")

    @property
    def backend_cpu(self) -> float:
        return sum(v for k, v in self.cpu.items() if k != "fleet")


def _role(label: str) -> str | None:
    if label == "mirrorhub up":
        return "services"
    if "vision worker" in label:
        return "vision"
    if label in ("broker", "fleet"):
        return label
    return None  # multiprocessing's resource tracker: nothing of ours


def _by_role(values: dict[str, float]) -> dict[str, float]:
    roles: dict[str, float] = {}
    for label, value in values.items():
        if (role := _role(label)) is not None:
            roles[role] = roles.get(role, 0.0) + value
    return roles


async def measure(kind: str, mirrors: int, fps: float, warmup: float, window: float,
                  work: Path) -> Row:
    async with broker(kind, work) as (settings, broker_pid), up(work, **settings) as backend:
        async with httpx.AsyncClient(base_url=backend.url, timeout=30) as http:
            await enrol_people(http)
        frames = camera_frames(work / "frames")
        more = [(broker_pid, "broker")] if broker_pid is not None else []
        idle = Meter(backend.process.pid, "mirrorhub up", *more)
        idle.sample()
        before = {label: samples[-1][1] for label, samples in idle.rss.items()}
        minutes = (warmup + window + 5) / 60
        fleet = mirrorhub(["--log-level", "WARNING", "fleet", "--mirrors", str(mirrors),
                           "--fps", str(fps), "--minutes", f"{minutes:.3f}", "--frames",
                           str(frames), "--prefix", "bench", "--json"],
                          backend.env, work / "fleet.log")
        try:
            await asyncio.sleep(warmup)
            meter = Meter(backend.process.pid, "mirrorhub up", *more, (fleet.pid, "fleet"))
            cpu_start, started = meter.cpu_seconds(), time.monotonic()
            while time.monotonic() < started + window:
                meter.sample()
                await asyncio.sleep(2)
            cpu_end, wall = meter.cpu_seconds(), time.monotonic() - started
            await asyncio.to_thread(fleet.wait, 600)
        finally:
            stop(fleet)
    rss = {label: statistics.median(rss for _, rss in samples) - before.get(label, 0)
           if label != "fleet" else statistics.median(rss for _, rss in samples)
           for label, samples in meter.rss.items()}
    cpu = {label: (cpu_end[label] - cpu_start.get(label, 0.0)) / wall for label in cpu_end}
    lines = (work / "fleet.log").read_text().splitlines()
    summaries = [line for line in lines if line.startswith("{")]
    # No summary: the fleet failed (it says why on its last line), which the table shows.
    summary = json.loads(summaries[-1]) if summaries else {"error": (lines or ["?"])[-1]}
    return Row(kind, mirrors, fps, {k: v / MB for k, v in _by_role(rss).items()},
               _by_role(cpu), summary)


def _checked(summary: dict[str, object]) -> str:
    missing = summary.get("missing")
    if not isinstance(missing, list):
        return f"fleet failed: {summary.get('error')}"
    return f"{summary.get('right')} / {len(missing)}, online in {summary.get('connected_in')} s"


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| broker | mirrors | fps | broker | services + bridge | vision worker | fleet "
        "| backend per mirror | fleet per mirror "
        "| displays right / mirrors missing, fleet online in |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        def cell(role: str, row: Row = row) -> str:
            if role not in row.rss:
                return "in services" if role == "broker" else "-"
            return f"{row.rss[role]:+.1f} MB, {row.cpu.get(role, 0.0):.2f} cores"

        fleet_rss = row.rss.get("fleet", 0.0)
        lines.append(
            f"| {row.broker} | {row.mirrors:,} | {row.fps:g} | {cell('broker')} "
            f"| {cell('services')} | {cell('vision')} | {fleet_rss:.1f} MB, "
            f"{row.cpu.get('fleet', 0.0):.2f} cores "
            f"| {row.backend_rss * 1024 / row.mirrors:.0f} KB, "
            f"{row.backend_cpu * 1000 / row.mirrors:.2f} ms/s "
            f"| {fleet_rss * 1024 / row.mirrors:.0f} KB, "
            f"{row.cpu.get('fleet', 0.0) * 1000 / row.mirrors:.2f} ms/s "
            f"| {_checked(row.fleet)} |")
    for kind in sorted({row.broker for row in rows}):
        sizes = sorted((row for row in rows if row.broker == kind), key=lambda r: r.mirrors)
        if len(sizes) >= 2:
            small, large = sizes[0], sizes[-1]
            more = large.mirrors - small.mirrors
            lines.append(
                f"\n{kind}, each mirror beyond {small.mirrors:,}: backend "
                f"{(large.backend_rss - small.backend_rss) * 1024 / more:.0f} KB and "
                f"{(large.backend_cpu - small.backend_cpu) * 1000 / more:.2f} ms CPU a second; "
                f"fleet {(large.rss['fleet'] - small.rss['fleet']) * 1024 / more:.0f} KB and "
                f"{(large.cpu['fleet'] - small.cpu['fleet']) * 1000 / more:.2f} ms a second")
    return lines


async def bench(kinds: list[str], sizes: list[int], fps: float, warmup: float,
                window: float) -> list[Row]:
    rows = []
    for kind in kinds:
        if kind == "mosquitto" and not Path(MOSQUITTO).exists():
            print(f"skipped mosquitto: {MOSQUITTO} is not installed", file=sys.stderr)
            continue
        for mirrors in sizes:
            with tempfile.TemporaryDirectory(prefix="mirrorhub-fleet-cost-") as work:
                row = await measure(kind, mirrors, fps, warmup, window, Path(work))
            print(f"measured {kind} x {mirrors}: {row.rss} MB, {row.cpu} cores", file=sys.stderr)
            rows.append(row)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--brokers", nargs="+", default=["amqtt", "mosquitto"],
                        choices=["amqtt", "mosquitto"])
    parser.add_argument("--mirrors", nargs="+", type=int, default=[100, 1000])
    parser.add_argument("--fps", type=float, default=0.1, help="per mirror (default 0.1)")
    parser.add_argument("--warmup", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument("--window", type=float, default=60.0, metavar="SECONDS")
    args = parser.parse_args()
    rows = uvloop.run(bench(args.brokers, args.mirrors, args.fps, args.warmup, args.window))
    print("\n".join(table(rows)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
