"""Broker accounts of the embedded broker, generated on first run into the data directory.

One account per role (each service, the bridge, devices, and ``operator`` for people at a
terminal with ``mosquitto_pub``); ``mirrorhub credentials`` prints them.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path

ROLES = ("auth", "vision", "messaging", "bridge", "device", "operator")


def load_or_create_accounts(path: Path) -> dict[str, str]:
    accounts: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
    missing = [role for role in ROLES if role not in accounts]
    if missing:
        accounts.update({role: secrets.token_urlsafe(24) for role in missing})
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(accounts, handle, indent=2)
        tmp.replace(path)
    return accounts
