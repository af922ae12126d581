"""amqtt plugins of the embedded broker.

:class:`CredentialsAuthPlugin` admits clients whose username and password match the accounts in
its config (the service, bridge and operator accounts mirrorhub generates into ``./data``), and
anonymous clients only when ``allow_anonymous`` is set.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from amqtt.plugins.base import BaseAuthPlugin
from amqtt.session import Session


class CredentialsAuthPlugin(BaseAuthPlugin):  # type: ignore[misc]  # amqtt is untyped
    """Username/password check against a fixed table, compared in constant time."""

    @dataclass
    class Config:
        accounts: dict[str, str] = field(default_factory=dict)
        allow_anonymous: bool = False

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
        if expected is None or not hmac.compare_digest(
            expected.encode(), (password or "").encode()
        ):
            self.context.logger.info("refused %s: bad credentials for %r", session.client_id,
                                     username)
            return False
        return True
