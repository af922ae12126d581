"""amqtt plugins of the embedded broker.

:class:`CredentialsAuthPlugin` admits clients whose username and password match the accounts in
its config (the service, bridge and operator accounts mirrorhub generates into ``./data``) or a
mirror's own account (``mirrorhub device add``), and anonymous clients only when
``allow_anonymous`` is set; it refuses a client id that is not the account's, and a mirror's
Last Will anywhere but its own status topic (:mod:`broker.access`). :class:`MirrorTopicsPlugin`
keeps mirrors to their own topics.

The broker (:class:`broker.server._Broker`) asks :class:`CredentialsAuthPlugin` about the
CONNECT alone, before it looks up any session; the plugin marks the session with the mirror
it speaks for (``session.mirror_id``: a mirror id, ``+`` for the shared device account, None for
every other account) anew on every connect.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass, field
from pathlib import Path

from amqtt.contexts import Action
from amqtt.plugins.base import BaseAuthPlugin, BaseTopicPlugin
from amqtt.session import Session

from broker.access import SHARED_DEVICE, Access, client_id_may, mirror_may, mirror_will_may


class CredentialsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username/password check against a fixed table, compared in constant time."""

    @dataclass
    class Config:
        accounts: dict[str, str] = field(default_factory=dict)
        allow_anonymous: bool = False
        devices_file: str | None = None  # per-mirror accounts, see DeviceAccounts
        namespace: str = ""

    _devices: DeviceAccounts | None = None

    async def authenticate(self, *, session: Session) -> bool | None:
        config: CredentialsAuthPlugin.Config = self.config
        username, password = session.username, session.password
        session.mirror_id = None
        if not username:
            if config.allow_anonymous:
                session.is_anonymous = True
                return self._client_id_ok(session, mirror=False)
            self.context.logger.info("refused anonymous client %s", session.client_id)
            return False
        expected = config.accounts.get(username)
        mirror = False
        if expected is None:
            expected = self._device_accounts().get(username)
            mirror = expected is not None
        if expected is None or not hmac.compare_digest(
            expected.encode(), (password or "").encode()
        ):
            self.context.logger.info("refused %s: bad credentials for %r", session.client_id,
                                     username)
            return False
        if not self._client_id_ok(session, mirror=mirror):
            return False
        if mirror or username == SHARED_DEVICE:
            mirror_id = username if mirror else "+"
            if session.will_flag and not mirror_will_may(mirror_id, session.will_topic or "",
                                                         config.namespace):
                self.context.logger.info("refused %s (%s): a Last Will on %s", session.client_id,
                                         username, session.will_topic)
                return False
            # For MirrorTopicsPlugin: this session speaks for that mirror (+: any mirror).
            session.mirror_id = mirror_id
        return True

    def _device_accounts(self) -> DeviceAccounts:
        if self._devices is None:
            path = self.config.devices_file
            self._devices = DeviceAccounts(Path(path) if path else None)
        return self._devices

    def _client_id_ok(self, session: Session, *, mirror: bool) -> bool:
        devices = self._device_accounts()
        if client_id_may(session.username, mirror, session.client_id, self.config.namespace,
                         lambda name: devices.get(name) is not None):
            return True
        self.context.logger.info("refused %s: client id not %r's to use", session.client_id,
                                 session.username)
        return False


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
    """Keeps mirror accounts (sessions marked with ``mirror_id``) to their own topics
    (:mod:`broker.access`); every other account passes."""

    @dataclass
    class Config:
        namespace: str = ""

    async def topic_filtering(self, *, session: Session | None = None, topic: str | None = None,
                              action: Action | None = None) -> bool:
        config: MirrorTopicsPlugin.Config = self.config
        mirror_id: str | None = getattr(session, "mirror_id", None)
        if session is None or topic is None or action is None or mirror_id is None:
            return True
        allowed = mirror_may(mirror_id, session.client_id, topic, _ACCESS[action],
                             config.namespace)
        if not allowed and action is not Action.RECEIVE:
            self.context.logger.info("%s (%s) may not %s %s", session.client_id,
                                     session.username, action.value, topic)
        return allowed
