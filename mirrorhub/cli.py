"""The ``mirrorhub`` command.

::

    mirrorhub up                      broker, services and bridge in one process
    mirrorhub broker                  the embedded broker alone
    mirrorhub service auth|vision|messaging
                                      one service, against MIRRORHUB_BROKER_URL or the local broker
    mirrorhub bridge                  the HTTP bridge alone
    mirrorhub credentials             the generated broker accounts (for mosquitto_pub -u/-P)
    mirrorhub mirror --id M --model-code X [--frames DIR] [--fps N] [--once] [--json]
                                      a simulated mirror, with mirror M's own account
    mirrorhub fleet --mirrors N --fps F --minutes M --frames DIR [--json]
                                      N simulated mirrors, each with its own account, showing
                                      the people of DIR/<name>/; checks their displays
    mirrorhub device add|remove|list [M]
                                      mirrors' own broker accounts (username = mirror id); add and
                                      remove tell the services (Home Assistant's entities)
    mirrorhub asyncapi [--check]      write docs/asyncapi.yaml from the services' declarations
    mirrorhub admin add NAME          a face admin account (seed 002); the password is asked for,
                                      or read from the first line of stdin when it is not a terminal
    mirrorhub faces import SOURCE [--json] [--concurrency N] [--timeout S]
                                      enrol a folder per person (or a CSV of name,path) over MQTT,
                                      skipping photos enrolled before; exit 1 if any failed
    mirrorhub export USER             everything held about one user, as JSON (embeddings aside)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import FrameType
from typing import Any

import uvloop
from pydantic import ValidationError

from devices import fleet
from devices.fleet import FleetPlan, Summary
from devices.frames import MAX_FPS
from devices.mirror import Simulation
from mirrorhub import asyncapi as asyncapi_doc
from mirrorhub import device_events, logs, stack
from mirrorhub.credentials import device_accounts, device_password, remove_device
from mirrorhub.export import export_user
from mirrorhub.faces_import import DEFAULT_CONCURRENCY, import_faces
from mirrorhub.settings import Settings
from schemas.errors import ConfigError, MirrorhubError, ServiceError
from schemas.homeassistant import DEVICE_ADDED, DEVICE_REMOVED
from schemas.topics import Topic
from services.auth.admins import add_admin
from services.auth.config import AuthSettings

SERVICES = ("auth", "vision", "messaging")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mirrorhub", description="mirrorhub backend")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ...")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="broker, services and bridge in one process")
    sub.add_parser("broker", help="the embedded MQTT broker alone")
    service = sub.add_parser("service", help="one service")
    service.add_argument("name", choices=SERVICES)
    sub.add_parser("bridge", help="the HTTP bridge alone")
    sub.add_parser("credentials", help="print the generated broker accounts")
    asyncapi = sub.add_parser("asyncapi", help="write docs/asyncapi.yaml from the declarations")
    asyncapi.add_argument("--check", action="store_true",
                          help="write nothing; exit 1 when the file is not what it would be")
    asyncapi.add_argument("--output", default=str(asyncapi_doc.DOCUMENT), metavar="PATH")
    device = sub.add_parser("device", help="mirrors' own broker accounts")
    device.add_argument("action", choices=("add", "remove", "list"))
    device.add_argument("mirror_id", nargs="?", metavar="M", help="the mirror id (its username)")
    admin = sub.add_parser("admin", help="face admin accounts (seed 002's /jwt/login)")
    admin.add_argument("action", choices=("add",))
    admin.add_argument("name", help="the admin's username")
    faces = sub.add_parser("faces", help="enrolled faces in bulk")
    faces.add_argument("action", choices=("import",))
    faces.add_argument("source", type=Path, metavar="SOURCE",
                       help="a folder of one folder per person, or a CSV file of name,path")
    faces.add_argument("--json", action="store_true", help="print the summary as JSON")
    faces.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, metavar="N",
                       help=f"photos in flight at once (default {DEFAULT_CONCURRENCY})")
    faces.add_argument("--timeout", type=float, default=60.0, metavar="S",
                       help="seconds to wait for each photo's enrolment (default 60)")
    export = sub.add_parser("export", help="everything held about one user, as JSON")
    export.add_argument("username", metavar="USER")
    _mirror_parser(sub.add_parser(
        "mirror", help="a simulated mirror: status, widgets, camera frames; prints displays",
        description="Be mirror M until Ctrl-C: publish its status and widgets, send the images "
        "of --frames as camera frames, print each display it is told, one line each.",
    ))
    _fleet_parser(sub.add_parser(
        "fleet", help="many simulated mirrors from one process; checks their displays",
        description="Play N mirrors for M minutes, each with its own broker account, status, "
        "widgets and camera; mirror i shows the images of the i-th subfolder of --frames (mod "
        "their number), a person enrolled under that subfolder's name. Prints how many "
        "displays showed the right person, the wrong one or nobody; exit code 1 when any was "
        "wrong or a mirror never showed its person.",
    ))
    return parser


def _fleet_parser(fleet: argparse.ArgumentParser) -> None:
    fleet.add_argument("--mirrors", type=int, default=10, metavar="N", help="default 10")
    fleet.add_argument("--fps", type=float, default=1.0,
                       help=f"frames per second per mirror, at most {MAX_FPS:g} (default 1)")
    fleet.add_argument("--minutes", type=float, default=1.0, metavar="M", help="default 1")
    fleet.add_argument("--frames", required=True, metavar="DIR",
                       help="one subfolder per enrolled person, named as enrolled, of images")
    fleet.add_argument("--model-code", default="FLEET-1", metavar="X",
                       help="the mirrors' model (default FLEET-1)")
    fleet.add_argument("--prefix", default="fleet",
                       help="mirror ids are PREFIX-0000, PREFIX-0001, ... (default fleet)")
    fleet.add_argument("--json", action="store_true", help="print the summary as JSON")


def _fleet(settings: Settings, args: argparse.Namespace) -> int:
    plan = FleetPlan.checked(args.mirrors, args.fps, args.minutes, args.frames,
                             model_code=args.model_code, prefix=args.prefix)
    if settings.external_broker is None:  # the mirrors' accounts are in the data dir
        _in_data_dir(settings, settings.data_dir)
    buses = settings.device_buses(plan.mirror_ids)

    def output(summary: Summary) -> None:
        text = json.dumps(summary.as_json()) if args.json else "\n".join(summary.lines())
        print(text, flush=True)

    return uvloop.run(fleet.play(plan, buses, output))


def _mirror_parser(mirror: argparse.ArgumentParser) -> None:
    mirror.add_argument("--id", dest="mirror_id", required=True, metavar="M",
                        help="mirror id, one topic level (no '/', '+', '#')")
    mirror.add_argument("--model-code", required=True, metavar="X", help="the mirror's model")
    mirror.add_argument("--frames", metavar="DIR",
                        help="folder of *.jpg/*.jpeg/*.png sent as camera frames, by name")
    mirror.add_argument("--fps", type=float, default=2.0,
                        help=f"frames per second, above 0 and at most {MAX_FPS:g} (default 2)")
    repeat = mirror.add_mutually_exclusive_group()
    repeat.add_argument("--loop", dest="loop", action="store_true", default=True,
                        help="start the folder over after its last image (default)")
    repeat.add_argument("--once", dest="loop", action="store_false",
                        help="send the folder once, then stay online without frames")
    mirror.add_argument("--count", type=int, metavar="N", help="stop sending after N frames")
    mirror.add_argument("--json", action="store_true",
                        help="print each display as a JSON line instead of a readable one")


def _device(settings: Settings, action: str, mirror_id: str | None) -> int:
    """``add`` prints ``mirror_id password`` (made if new), ``remove`` forgets it, ``list``
    prints every mirror id with an account."""
    path = settings.devices_file
    if action == "list":
        for known in sorted(device_accounts(path)):
            print(known)
        return 0
    if mirror_id is None:
        raise ConfigError(f"mirrorhub device {action} needs a mirror id")
    if action == "add":
        print(f"{mirror_id} {device_password(path, mirror_id)}")
        # Unheard, the mirror gets its entities when it first connects: no warning.
        _tell(settings, DEVICE_ADDED, mirror_id)
        return 0
    removed = remove_device(path, mirror_id)
    why = _tell(settings, DEVICE_REMOVED, mirror_id)  # again, if the last time failed
    if why is not None:
        print(f"mirrorhub: the services were not told that {mirror_id} is gone ({why}); "
              "Home Assistant keeps its entities until this is run again with the broker up",
              file=sys.stderr)
    if not removed:
        raise ConfigError(f"mirror {mirror_id!r} has no account")
    return 0


def _tell(settings: Settings, topic: Topic[Any], mirror_id: str) -> str | None:
    """Tell the services (mirrorhub/device_events.py); why not, when they were not told."""
    if settings.external_broker is None and not settings.accounts_file.exists():
        return None  # no broker, so no service, ever ran with this data dir: none to tell
    return device_events.tell(settings.bus("operator"), topic, mirror_id)


def _password() -> str:
    """The new admin's password: typed twice at a terminal, else the first line of stdin."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        raise ConfigError("the two passwords differ")
    return first


def _admin(settings: Settings, name: str) -> int:
    """``admin add``: the admin is stored in auth's database of this data dir (or
    ``MIRRORHUB_AUTH_DATABASE_URL``); prints its name. Without that URL the data dir must
    exist: an admin in a fresh ``./data`` would be one no running auth service knows."""
    auth = AuthSettings.from_env(settings.data_dir)
    if "MIRRORHUB_AUTH_DATABASE_URL" in os.environ:
        print(f"mirrorhub: auth database {auth.database_url}", file=sys.stderr)
    else:
        _in_data_dir(settings, settings.data_dir)
    password = _password()
    try:
        stored = asyncio.run(add_admin(auth, name, password))
    except ValidationError as exc:
        error = exc.errors()[0]
        raise ConfigError(f"{error['loc'][0]}: {error['msg']}") from exc
    except ServiceError as exc:
        raise ConfigError(f"{name}: {exc.message}") from exc
    print(f"admin {stored} added")
    return 0


def _faces(settings: Settings, args: argparse.Namespace) -> int:
    """``faces import``: as the ``operator`` account of the embedded broker (its data dir must
    exist), or through ``MIRRORHUB_BROKER_URL``."""
    source: Path = args.source
    if not source.exists():
        raise ConfigError(f"{source} does not exist")
    if args.concurrency < 1:
        raise ConfigError("--concurrency must be 1 or more")
    if settings.external_broker is None:
        _in_data_dir(settings, settings.accounts_file)
    bus = settings.bus("operator")
    return uvloop.run(import_faces(bus, source, concurrency=args.concurrency,
                                   timeout=args.timeout, as_json=args.json))


def _export(settings: Settings, username: str) -> int:
    """``export USER``: as the ``operator`` account, like ``faces import``; an unknown user is
    a plain error (status 2)."""
    if settings.external_broker is None:
        _in_data_dir(settings, settings.accounts_file)
    try:
        print(uvloop.run(export_user(settings.bus("operator"), username)))
    except ServiceError as exc:
        raise ConfigError(f"{username}: {exc.message}") from exc
    return 0


def _asyncapi(path: Path, check: bool) -> int:
    text = asyncapi_doc.render(asyncapi_doc.document())
    current = path.read_text(encoding="utf-8") if path.exists() else None
    if check:
        if current != text:
            print(f"{path} is stale: run mirrorhub asyncapi", file=sys.stderr)
            return 1
        return 0
    if current != text:
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path}")
    return 0


async def _stoppable(work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` until it ends or SIGTERM (``kill``, ``docker stop``, systemd) cancels it,
    which closes every ``async with`` in order, worker processes included, exactly as Ctrl-C
    does. Left at its default, SIGTERM ended the process on the spot and its vision worker
    lived on; raising KeyboardInterrupt from the handler instead (where SIGINT is ignored, as in
    a script's background job) tore the loop down with a traceback. uvicorn, which takes both
    signals while it serves, raises the signal again once it has stopped, so it comes here
    too."""
    task = asyncio.current_task()
    assert task is not None
    loop = asyncio.get_running_loop()
    asked = False

    def stop(signum: int, frame: FrameType | None) -> None:
        nonlocal asked
        asked = True
        loop.call_soon_threadsafe(task.cancel)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        await work
    except asyncio.CancelledError:
        if not asked:
            raise
    finally:
        signal.signal(signal.SIGTERM, previous)


def _in_data_dir(settings: Settings, needed: Path) -> None:
    """Commands that use what ``mirrorhub up`` generated say on stderr which data dir that is,
    and refuse to make it: run from the wrong directory, they would make a fresh ``./data``
    with secrets the running broker does not know."""
    print(f"mirrorhub: data dir {settings.data_dir}", file=sys.stderr)
    if not needed.exists():
        raise ConfigError(
            f"{needed} does not exist: start `mirrorhub up` first, or set MIRRORHUB_DATA_DIR "
            "to the data dir the broker uses"
        )


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        logs.configure(args.log_level, logs.log_format(os.environ.get("MIRRORHUB_LOG_FORMAT")))
    except ConfigError as exc:
        print(f"mirrorhub: {exc}", file=sys.stderr)
        return 2
    # amqtt narrates every packet at INFO; its warnings still show.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    if args.command == "asyncapi":
        return _asyncapi(Path(args.output), args.check)
    try:
        settings = Settings.from_env()
        if args.command == "credentials":
            _in_data_dir(settings, settings.accounts_file)
            for role, password in settings.accounts().items():
                print(f"{role} {password}")
            return 0
        if args.command == "admin":
            return _admin(settings, args.name)
        if args.command == "fleet":
            return _fleet(settings, args)
        if args.command == "faces":
            return _faces(settings, args)
        if args.command == "export":
            return _export(settings, args.username)
        if args.command == "device":
            _in_data_dir(settings, settings.data_dir)
            return _device(settings, args.action, args.mirror_id)
        runner: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "up": lambda: stack.up(settings),
            "broker": lambda: stack.broker_only(settings),
            "service": lambda: stack.service_only(settings, args.name),
            "bridge": lambda: stack.bridge_only(settings),
        }
        if args.command == "mirror":
            # Bad input fails here, before anything connects.
            simulation = Simulation.checked(
                args.mirror_id, args.model_code, frames=args.frames, fps=args.fps,
                loop=args.loop, count=args.count, json=args.json,
            )
            if settings.external_broker is None:  # its account is in the data dir
                _in_data_dir(settings, settings.data_dir)
            bus = settings.device_bus(simulation.mirror_id)
            runner["mirror"] = lambda: simulation.run(bus)
        # uvloop: the same asyncio API, a faster loop for sockets and callbacks.
        uvloop.run(_stoppable(runner[args.command]()))
    except MirrorhubError as exc:
        print(f"mirrorhub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
