"""What the soak (bench/soak.py) and the fleet bench (bench/fleet_cost.py) share: a
``mirrorhub up`` child on free ports, the people it knows, and a meter of processes' memory and
CPU.

Children die with this process (``PR_SET_PDEATHSIG``): a bench stopped with ``kill -9`` leaves
no broker or service behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from pathlib import Path

import cv2
import httpx
import psutil

FACES = Path(__file__).resolve().parents[2] / "shared" / "faces"
# Who the frames show, and the photo (not one of their enrolment photos) they show.
CAMERAS = {"alex_lacamoire": "alex_lacamoire1.jpg", "kit_harington": "johnsnow_test1.jpg",
           "obama": "obama1.jpg"}
FRAME_WIDTH = 640  # a mirror camera's frame, not a press photo
PASSWORD = "soak-password"
_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**settings: str) -> dict[str, str]:
    """This process's environment without any ``MIRRORHUB_`` setting, plus ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIRRORHUB_")}
    env.update(settings)
    return env


def mirrorhub(args: Iterable[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``python -m mirrorhub.cli ARGS`` from this checkout, output to ``log``."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mirrorhub.cli", *args], env=env,
                                stdout=out, stderr=subprocess.STDOUT,
                                cwd=Path(__file__).resolve().parents[1],
                                preexec_fn=die_with_parent)


def stop(process: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM, and SIGKILL if it is still there after ``timeout``."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)


async def wait_for_bridge(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    async with asyncio.timeout(120), httpx.AsyncClient(base_url=url) as http:
        while True:
            try:
                await http.get("/whoami")
                return
            except httpx.TransportError:
                if process.poll() is not None:
                    raise RuntimeError(f"mirrorhub up exited: {log.read_text()[-2000:]}") from None
                await asyncio.sleep(0.2)


@dataclass(frozen=True)
class Up:
    """A running ``mirrorhub up`` child: its process, bridge URL and environment."""

    process: subprocess.Popen[bytes]
    url: str
    env: dict[str, str]
    data_dir: Path
    broker_port: int


@contextlib.asynccontextmanager
async def up(work: Path, **settings: str) -> AsyncIterator[Up]:
    """``mirrorhub up`` with its data dir under ``work``, liveness off (the cameras show still
    photos) and free ports; ``settings`` add or override ``MIRRORHUB_*`` variables."""
    data, log = work / "data", work / "up.log"
    data.mkdir(parents=True, exist_ok=True)
    broker_port, bridge_port = free_port(), free_port()
    env = clean_env(MIRRORHUB_DATA_DIR=str(data), MIRRORHUB_BROKER_PORT=str(broker_port),
                    MIRRORHUB_BRIDGE_PORT=str(bridge_port), MIRRORHUB_LIVENESS="off",
                    **settings)
    process = mirrorhub(["--log-level", "WARNING", "up"], env, log)
    try:
        url = f"http://127.0.0.1:{bridge_port}"
        await wait_for_bridge(process, url, log)
        yield Up(process, url, env, data, broker_port)
    finally:
        stop(process)


def camera_frames(target: Path) -> Path:
    """A frames folder for ``mirrorhub fleet``: one subfolder per person of :data:`CAMERAS`
    holding their test photo scaled to :data:`FRAME_WIDTH`."""
    for name, photo in CAMERAS.items():
        image = cv2.imread(str(FACES / "test" / photo))
        if image is None:
            raise RuntimeError(f"cannot read {FACES / 'test' / photo}")
        height, width = image.shape[:2]
        scaled = cv2.resize(image, (FRAME_WIDTH, round(height * FRAME_WIDTH / width)),
                            interpolation=cv2.INTER_AREA)
        (target / name).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target / name / "frame.jpg"), scaled, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return target


async def enrol_people(http: httpx.AsyncClient) -> dict[str, str]:
    """Register each person of :data:`CAMERAS` as a user and enrol their training photos with
    their token (so their face unlocks their messages); returns their tokens."""
    tokens = {}
    for name in CAMERAS:
        form = {"username": name, "password": PASSWORD, "email": f"{name}@soak.invalid"}
        await http.post("/register/user", data=form)
        login = await http.post("/login", data={"username": name, "password": PASSWORD})
        tokens[name] = login.json()["token"]
        for photo in sorted((FACES / "train" / name).iterdir()):
            enrolled = await http.post(
                "/register/face", data={"username": name},
                headers={"Authorization": f"Bearer {tokens[name]}"},
                files={"face_image": (photo.name, photo.read_bytes())})
            if enrolled.json().get("result") != "success":
                raise RuntimeError(f"enrolling {photo}: {enrolled.text}")
    return tokens


class Meter:
    """Memory (RSS) samples and CPU time of a process tree and of further processes, by label.

    The tree is looked at again on every sample: vision's worker process starts with the first
    frame, not with ``mirrorhub up``."""

    def __init__(self, root: int, label: str, *more: tuple[int, str]) -> None:
        self._root = psutil.Process(root)
        self._label = label
        self._more = {name: psutil.Process(pid) for pid, name in more}
        self.rss: dict[str, list[tuple[float, int]]] = {}

    def processes(self) -> dict[str, psutil.Process]:
        found = {self._label: self._root}
        with contextlib.suppress(psutil.Error):
            for child in self._root.children(recursive=True):
                found[f"{self._label}: {_name(child)} {child.pid}"] = child
        return found | self._more

    def sample(self) -> None:
        now = time.monotonic()
        for label, process in self.processes().items():
            with contextlib.suppress(psutil.Error):
                self.rss.setdefault(label, []).append((now, process.memory_info().rss))

    def cpu_seconds(self) -> dict[str, float]:
        """User plus system CPU time of each process so far."""
        seconds = {}
        for label, process in self.processes().items():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                seconds[label] = times.user + times.system
        return seconds


def _name(process: psutil.Process) -> str:
    try:
        line = process.cmdline()
    except psutil.Error:
        return str(process.pid)
    if any("resource_tracker" in part for part in line):
        return "multiprocessing resource tracker"
    if any("multiprocessing" in part or "spawn" in part for part in line):
        return "vision worker"
    return " ".join(line)[:60]
