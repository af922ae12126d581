"""Broker accounts of the embedded broker, generated on first run into the data directory.

One account per role (each service, the bridge, devices, and ``operator`` for people at a
terminal with ``mosquitto_pub``); ``mirrorhub credentials`` prints them. Each mirror may also
have an account of its own (``mirrorhub device add``), which the embedded broker keeps to that
mirror's topics (:mod:`broker.access`).
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from broker.access import id_owner
from schemas import names
from schemas.errors import ConfigError

ROLES = ("auth", "vision", "messaging", "bridge", "device", "operator")


def load_or_create_accounts(path: Path) -> dict[str, str]:
    accounts: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [role for role in ROLES if role not in accounts]
    if missing:
        accounts.update({role: secrets.token_urlsafe(24) for role in missing})
        _write_private(path, accounts)
    return accounts


def _write_private(path: Path, data: dict[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
    tmp.replace(path)


def device_accounts(path: Path) -> dict[str, str]:
    """The per-mirror broker accounts, ``{mirror_id: password}``."""
    return json.loads(path.read_text()) if path.exists() else {}


def device_password(path: Path, mirror_id: str) -> str:
    """The broker password of mirror ``mirror_id``'s own account, made on first use; the
    username is the mirror id. The embedded broker reads the file again when it changes."""
    return device_passwords(path, [mirror_id])[mirror_id]


def device_passwords(path: Path, mirror_ids: Iterable[str]) -> dict[str, str]:
    """:func:`device_password` of many mirrors at once, with one write of the file for all the
    new ones (a fleet of a thousand would otherwise rewrite it a thousand times, and the
    embedded broker reload it as often)."""
    wanted = [check_mirror_id(mirror_id) for mirror_id in mirror_ids]
    accounts = device_accounts(path)
    new = [mirror_id for mirror_id in wanted if mirror_id not in accounts]
    if new:
        accounts.update({mirror_id: secrets.token_urlsafe(24) for mirror_id in new})
        _write_private(path, accounts)
    return {mirror_id: accounts[mirror_id] for mirror_id in wanted}


def remove_device(path: Path, mirror_id: str) -> bool:
    """Forget a mirror's account (it can no longer connect); False if there was none."""
    accounts = device_accounts(path)
    if accounts.pop(mirror_id, None) is None:
        return False
    _write_private(path, accounts)
    return True


def check_mirror_id(mirror_id: str) -> str:
    """A mirror id by :data:`schemas.names.MirrorId`'s rules that is no role's name (it is the
    account's username)."""
    names.check_mirror_id(mirror_id)
    if mirror_id in ROLES:
        raise ConfigError(f"mirror id {mirror_id!r} is the name of a role account; pick another")
    if (owner := id_owner(mirror_id)) is not None:
        raise ConfigError(f"mirror id {mirror_id!r} looks like a client id of {owner}'s "
                          f"(a word {owner!r} followed by '-'); pick another")
    return mirror_id
