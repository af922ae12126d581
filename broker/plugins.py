"""amqtt plugins of the embedded broker.

:class:`CredentialsAuthPlugin` admits clients whose username and password match the accounts in
its config (the service, bridge and operator accounts mirrorhub generates into ``./data``) or a
mirror's own account (``mirrorhub device add``), and anonymous clients only when
``allow_anonymous`` is set. :class:`MirrorTopicsPlugin` keeps mirrors to their own topics.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker.access import Access, mirror_may


class CredentialsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username/password check against a fixed table, compared in constant time."""

    @dataclass
    class Config:
        accounts: dict[str, str] = field(default_factory=dict)
        allow_anonymous: bool = False
        devices_file: str | None = None  # per-mirror accounts, see DeviceAccounts

    _devices: DeviceAccounts | None = None

    async def authenticate(self, *, session: Session) -> bool | None:
        config: CredentialsAuthPlugin.Config = self.config
        username, password = session.username, session.password
        if not username:
            if config.allow_anonymous:
                session.is_anonymous = True
                return True
            self.context.logger.info("refused anonymous client %s", session.client_id)
            return False
        expected = config.accounts.get(username)
        if expected is None:
            if self._devices is None:
                path = config.devices_file
                self._devices = DeviceAccounts(Path(path) if path else None)
            expected = self._devices.get(username)
            # Marks the session for MirrorTopicsPlugin: this account is one mirror's.
            session.mirror_account = expected is not None
        if expected is None or not hmac.compare_digest(
            expected.encode(), (password or "").encode()
        ):
            self.context.logger.info("refused %s: bad credentials for %r", session.client_id,
                                     username)
            return False
        return True


_ACCESS = {Action.PUBLISH: Access.PUBLISH, Action.SUBSCRIBE: Access.SUBSCRIBE,
           Action.RECEIVE: Access.RECEIVE}


class DeviceAccounts:
    """The per-mirror accounts in a JSON file (``{mirror_id: password}``), read again whenever
    the file changes, so ``mirrorhub device add`` works while the broker runs."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._accounts: dict[str, str] = {}

    def get(self, mirror_id: str) -> str | None:
        if self.path is None:
            return None
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        if (stat.st_mtime_ns, stat.st_size) != self._stamp:
            self._accounts = json.loads(self.path.read_text())
            self._stamp = (stat.st_mtime_ns, stat.st_size)
        return self._accounts.get(mirror_id)


class MirrorTopicsPlugin(BaseTopicPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Keeps mirror accounts to their own topics (:mod:`broker.access`); every other account
    passes."""

    @dataclass
    class Config:
        restricted: list[str] = field(default_factory=list)  # the shared device account(s)
        devices_file: str | None = None
        namespace: str = ""

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        config: MirrorTopicsPlugin.Config = self.config
        username = session.username if session else None
        if session is None or topic is None or action is None or not username:
            return True  # anonymous clients exist only where allow_anonymous said so
        if username in config.restricted:
            mirror_id = "+"
        elif getattr(session, "mirror_account", False):
            mirror_id = username
        else:
            return True
        allowed = mirror_may(mirror_id, session.client_id, topic, _ACCESS[action],
                             config.namespace)
        if not allowed and action is not Action.RECEIVE:
            self.context.logger.info("%s (%s) may not %s %s", session.client_id, username,
                                     action.value, topic)
        return allowed
