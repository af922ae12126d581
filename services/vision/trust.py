"""Which faces may unlock private content at a mirror, and binding a photo to an account.

A recognised face unlocks its user's private content (messages at a mirror) only when

1. the enrolled photo it matched best was enrolled with that user's token (it is *bound*), and
2. it has shown it is live (services/vision/watch.py: a head turning across frames, passively
   or asked), unless ``MIRRORHUB_LIVENESS=off``. :func:`trusted` is what
   ``events/vision/recognized`` carries as ``trusted`` and all that messaging goes by.

A photo enrolled without a token only greets by name.

The binding is checked here, with the auth service (``svc/auth/verify``), and not taken from
the bridge: the broker keeps mirrors off ``svc/...`` topics, but every internal account
(bridge, operator, the services) may publish ``svc/vision/enrol`` (broker/access.py), so a
request saying "this is ann's" proves nothing. Only a token that auth verifies as ``name``'s
binds, and the row records the account's id (``owner_id``), which survives a rename.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from broker.client import Bus
from schemas.auth import AUTH_VERIFY, AuthError, VerifyRequest
from schemas.envelope import ErrorCode
from schemas.errors import BusUnavailable, RequestTimeout, ServiceError
from schemas.names import normal_username
from schemas.vision import FaceResult, VisionError


class Account(NamedTuple):
    user_id: int
    username: str  # as auth stores it


async def account_of(bus: Bus, token: str, name: str) -> Account:
    """The account ``token`` belongs to, which must be the one ``name`` names.

    ``token_invalid`` (field ``token``) when auth does not verify it, ``wrong_user`` (field
    ``name``) when it is somebody else's, ``unavailable`` when auth cannot be asked."""
    try:
        reply = await bus.request(AUTH_VERIFY, VerifyRequest(token=token))
    except (BusUnavailable, RequestTimeout) as exc:
        raise ServiceError(ErrorCode.UNAVAILABLE,
                           f"the auth service cannot check the token: {exc}") from exc
    except ServiceError as exc:
        if exc.code != AuthError.TOKEN_INVALID:
            raise
        raise ServiceError(exc.code, exc.message, "token") from exc
    try:
        claimed = normal_username(name)
    except ValueError:  # not a username at all: nobody's token names it
        claimed = name
    if reply.username != claimed:
        raise ServiceError(VisionError.WRONG_USER,
                           f"the token belongs to {reply.username}, not to {name}", "name")
    return Account(reply.user_id, reply.username)


def trusted(faces: Sequence[FaceResult], need_live: bool = True) -> list[str]:
    """The names of ``faces`` that may unlock their user's private content (see above);
    ``need_live`` false when liveness is off."""
    return [face.name for face in faces if face.name is not None and face.bound
            and (face.live is True or not need_live)]
