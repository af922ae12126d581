"""``mirrorhub faces import SOURCE``: enrol many photos at once, resumably.

``SOURCE`` is a folder with one folder per person (the folder's name is the person's name; every
file in it that is not hidden is one photo) or a CSV file of ``name,path`` rows (a path relative
to the CSV's folder; a first row ``name,path`` is a header).

Every photo goes the way one enrolled over the API goes: ``svc/vision/enrol`` over MQTT to the
vision service, which analyses it and stores its embedding; nothing here opens vision's
database. Photos are sent :data:`DEFAULT_CONCURRENCY` at a time (``--concurrency``), so a
thousand photos are a thousand requests of which only a few are in flight; the service itself
stores each with a connection from its own bounded pool (asyncpg: 5 by default, the URL's
``?maxsize=``), so no import can exhaust the database's connections.

It is resumable: each file is hashed (SHA-256) first, and vision is asked which of the hashes it
holds already (``svc/vision/known_photos``, schemas/photos.py); those are skipped, the others
sent. An interrupted import run again sends only what it had not finished, and a finished one
sends nothing. The same photo listed twice is sent once.

At the end a summary counts what was enrolled, skipped and failed, with each failure's person,
file, code and reason (vision's error codes, schemas/vision.py, or ``unreadable``, ``too_large``
and ``no_person`` found here); ``--json`` prints it as JSON.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import json
import sys
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from broker.client import Bus
from broker.metrics import outcome_of
from broker.runner import validation_error
from broker.settings import BusSettings
from broker.tracing import request_id
from schemas.errors import BusError, ServiceError
from schemas.photos import KNOWN_MAX, VISION_KNOWN_PHOTOS, KnownPhotosRequest
from schemas.vision import IMAGE_MAX_BYTES, VISION_ENROL, EnrolRequest

DEFAULT_CONCURRENCY = 4
_CHUNK = 1 << 20


@dataclass(frozen=True)
class Photo:
    name: str  # the person
    path: Path


@dataclass(frozen=True)
class Failure:
    name: str
    path: str
    code: str
    message: str


@dataclass
class Summary:
    enrolled: int = 0
    skipped: int = 0
    failures: list[Failure] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"enrolled": self.enrolled, "skipped": self.skipped,
                "failed": len(self.failures),
                "failures": [asdict(failure) for failure in self.failures]}


def photos_in(source: Path) -> tuple[list[Photo], list[Failure]]:
    """The photos ``source`` lists (see the module docstring), and the entries that name none."""
    if source.is_file():
        return _from_csv(source)
    photos: list[Photo] = []
    stray: list[Failure] = []
    for entry in sorted(source.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            stray.append(Failure("", str(entry), "no_person",
                                 "a file outside any person's folder"))
            continue
        photos.extend(Photo(entry.name, path) for path in sorted(entry.iterdir())
                      if path.is_file() and not path.name.startswith("."))
    return photos, stray


def _from_csv(source: Path) -> tuple[list[Photo], list[Failure]]:
    photos: list[Photo] = []
    bad: list[Failure] = []
    with source.open(newline="", encoding="utf-8") as handle:
        for number, row in enumerate(csv.reader(handle), start=1):
            cells = [cell.strip() for cell in row]
            if number == 1 and [cell.lower() for cell in cells] == ["name", "path"]:
                continue
            if not any(cells):
                continue
            if len(cells) != 2 or not all(cells):
                bad.append(Failure(cells[0] if cells else "", f"{source}:{number}", "no_person",
                                   "a row must be name,path"))
                continue
            photos.append(Photo(cells[0], source.parent / cells[1]))
    return photos, bad


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            sha.update(chunk)
    return sha.hexdigest()


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


class Importer:
    """Enrols photos over ``bus``, ``concurrency`` at a time, each request waiting up to
    ``timeout`` seconds (analysis of large photos queues behind the others)."""

    def __init__(self, bus: Bus, *, concurrency: int = DEFAULT_CONCURRENCY,
                 timeout: float = 60.0, advance: Callable[[], None] = lambda: None) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be 1 or more")
        self.bus = bus
        self.timeout = timeout
        self._slots = asyncio.Semaphore(concurrency)
        self._advance = advance
        self._run = uuid.uuid4().hex[:12]  # request ids import-<run>-<n>: one run in the logs

    async def run(self, photos: list[Photo], failures: Iterable[Failure] = ()) -> Summary:
        summary = Summary(failures=list(failures))
        digests: list[tuple[Photo, str]] = []  # a photo listed twice is here twice
        for photo in photos:
            try:
                size = photo.path.stat().st_size
                if size > IMAGE_MAX_BYTES:
                    raise _Refused("too_large", f"{size} bytes; the limit is {IMAGE_MAX_BYTES}")
                digests.append((photo, await asyncio.to_thread(_digest, photo.path)))
            except (OSError, _Refused) as exc:
                self._fail(summary, photo, exc)
        known = await self._known(sorted({digest for _, digest in digests}))
        sending: dict[str, Photo] = {}  # one request per distinct photo
        for photo, digest in digests:
            if digest in known or digest in sending:
                summary.skipped += 1
                self._advance()
            else:
                sending[digest] = photo
        async with asyncio.TaskGroup() as group:
            for number, photo in enumerate(sending.values(), start=1):
                group.create_task(self._enrol(photo, number, summary))
        return summary

    async def _known(self, digests: list[str]) -> set[str]:
        known: set[str] = set()
        for chunk in _chunks(digests, KNOWN_MAX):
            reply = await self.bus.request(VISION_KNOWN_PHOTOS, KnownPhotosRequest(sha256=chunk),
                                           timeout=self.timeout)
            known.update(reply.known)
        return known

    async def _enrol(self, photo: Photo, number: int, summary: Summary) -> None:
        async with self._slots:
            try:
                # Read only now: at most ``concurrency`` photos are in memory at once.
                data = await asyncio.to_thread(photo.path.read_bytes)
                with request_id(f"import-{self._run}-{number}"):
                    await self.bus.request(VISION_ENROL, EnrolRequest(name=photo.name,
                                                                      image=data),
                                           timeout=self.timeout)
            except (ServiceError, BusError, OSError, ValueError) as exc:
                self._fail(summary, photo, exc)
                return
            summary.enrolled += 1
            self._advance()

    def _fail(self, summary: Summary, photo: Photo, exc: Exception) -> None:
        code = (exc.code if isinstance(exc, _Refused)
                else "unreadable" if isinstance(exc, OSError)
                else outcome_of(exc) if isinstance(exc, ServiceError | BusError)
                else "invalid")  # a name vision would not take (pydantic's ValueError)
        message = exc.message if isinstance(exc, ServiceError | _Refused) else str(exc)
        if isinstance(exc, ValidationError):
            message = validation_error(exc).message
        summary.failures.append(Failure(photo.name, str(photo.path), str(code), message))
        self._advance()


class _Refused(Exception):
    """A photo refused here, before anything is sent."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


async def import_faces(settings: BusSettings, source: Path, *, concurrency: int,
                       timeout: float, as_json: bool) -> int:
    """The command: a progress bar on stderr while it runs, the summary on stdout; exit
    status 0 when every photo is enrolled or skipped, 1 when some failed."""
    photos, failures = photos_in(source)
    console = Console(stderr=True)
    columns = (TextColumn("enrolling"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=as_json) as progress:
        task = progress.add_task("photos", total=len(photos))
        async with Bus(settings, role="import") as bus:
            importer = Importer(bus, concurrency=concurrency, timeout=timeout,
                                advance=lambda: progress.advance(task))
            summary = await importer.run(photos, failures)
    if as_json:
        print(json.dumps(summary.as_json(), indent=2))
    else:
        _print_summary(summary)
    return 1 if summary.failures else 0


def _print_summary(summary: Summary) -> None:
    out = Console(file=sys.stdout, soft_wrap=True)
    out.print(f"enrolled {summary.enrolled}, skipped {summary.skipped} (enrolled before), "
              f"failed {len(summary.failures)}")
    if summary.failures:
        table = Table("person", "file", "code", "reason")
        for failure in summary.failures:
            table.add_row(failure.name, failure.path, failure.code, failure.message)
        out.print(table)
