"""The ``mirrorhub`` command.

::

    mirrorhub up                      broker, services and bridge in one process
    mirrorhub broker                  the embedded broker alone
    mirrorhub service auth|vision     one service, against MIRRORHUB_BROKER_URL or the local broker
    mirrorhub bridge                  the HTTP bridge alone
    mirrorhub credentials             the generated broker accounts (for mosquitto_pub -u/-P)
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from broker.errors import MirrorhubError
from mirrorhub import stack
from mirrorhub.settings import Settings

SERVICES = ("auth", "vision")


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
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # amqtt narrates every packet at INFO; its warnings still show.
    logging.getLogger("amqtt").setLevel(logging.WARNING)
    logging.getLogger("transitions").setLevel(logging.WARNING)
    try:
        settings = Settings.from_env()
        if args.command == "credentials":
            for role, password in settings.accounts().items():
                print(f"{role} {password}")
            return 0
        runner: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "up": lambda: stack.up(settings),
            "broker": lambda: stack.broker_only(settings),
            "service": lambda: stack.service_only(settings, args.name),
            "bridge": lambda: stack.serve_bridge(settings),
        }
        # uvloop: the same asyncio API, a faster loop for sockets and callbacks.
        uvloop.run(runner[args.command]())
    except MirrorhubError as exc:
        print(f"mirrorhub: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
