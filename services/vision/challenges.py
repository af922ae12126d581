"""Head-turn challenges that any vision worker can check, and that work once.

A challenge id is an HS256 JWT (PyJWT) over the steps asked, the user it was made for
(``sub``), a random nonce (``jti``) and its expiry, signed with the liveness secret: from
``MIRRORHUB_LIVENESS_SECRET``, or generated on first run into ``{data}/vision/liveness_secret``.
Workers behind one ``$share`` group share no memory, so every worker of a deployment must have
the same secret (the same data directory, or the variable); then a challenge made by one is
checked by another from the id alone. Verification pins the algorithm and the issuer and
requires every claim; an expired, forged or malformed id, or one made for another user, fails.

Single use, without shared memory: the worker that starts verifying a challenge keeps its
nonce until it expires and announces it on ``events/vision/challenge_used``; every worker keeps
the nonces it hears of and refuses them. Two workers handed the same id at the same moment
each hear the other's announcement while analysing the frames (that takes far longer than the
broker takes to pass it on), and both fail it. A worker that restarts forgets the nonces it
knew, so an id can be used once more there within its lifetime (``MIRRORHUB_LIVENESS_TTL``,
60 s by default): keep it short.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt

from schemas.errors import ConfigError
from services.vision.liveness import Direction

ALGORITHM = "HS256"
ISSUER = "mirrorhub-vision-liveness"
MIN_SECRET_BYTES = 32
SECRET_FILE = Path("vision") / "liveness_secret"
_CLAIMS = ["exp", "iat", "sub", "iss", "jti", "steps"]
_MAX_KEPT = 100_000  # nonces kept per worker; at 60 s each that is 1,600 challenges a second


def load_secret(value: str | None, data_dir: Path) -> bytes:
    """The liveness secret: ``value`` when given, else the one in the data directory, made on
    first run (several workers starting at once agree: the first file linked in wins)."""
    if value is not None:
        secret = value.encode()
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigError(f"MIRRORHUB_LIVENESS_SECRET must have at least {MIN_SECRET_BYTES}"
                              " bytes")
        return secret
    path = data_dir / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)  # atomic, and never replaces another worker's secret
        finally:
            draft.unlink()
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(f"{path} must hold a secret of at least {MIN_SECRET_BYTES} bytes")
    return secret


@dataclass(frozen=True)
class Challenge:
    """A checked challenge: who it is for, the directions asked, its nonce and expiry."""

    username: str
    steps: tuple[Direction, ...]
    nonce: str
    expires_at: int


class ChallengeRefused(Exception):
    """The challenge id cannot be used; the message says why, for the verdict's reason."""


class Challenges:
    """Makes and checks challenge ids with ``secret``, each good for ``ttl`` seconds."""

    def __init__(self, secret: bytes, ttl: int, clock: Callable[[], float] = time.time) -> None:
        if len(secret) < MIN_SECRET_BYTES or ttl < 1:
            raise ConfigError("a liveness secret of 32 bytes and a lifetime of a second at least")
        self._secret = secret
        self.ttl = ttl
        self._clock = clock

    def issue(self, username: str) -> tuple[str, Challenge]:
        """A new challenge for ``username``, the direction drawn at random, and its id."""
        now = int(self._clock())
        challenge = Challenge(username, (secrets.choice(list(Direction)),),
                              secrets.token_urlsafe(16), now + self.ttl)
        claims: dict[str, Any] = {
            "iss": ISSUER, "sub": username, "steps": [str(step) for step in challenge.steps],
            "jti": challenge.nonce, "iat": now, "exp": challenge.expires_at}
        return jwt.encode(claims, self._secret, ALGORITHM), challenge

    def check(self, challenge_id: str, username: str) -> Challenge:
        """The challenge ``challenge_id`` names, or :class:`ChallengeRefused` saying why."""
        try:
            claims = jwt.decode(challenge_id, self._secret, algorithms=[ALGORITHM],
                                issuer=ISSUER, options={"require": _CLAIMS})
            steps = tuple(Direction(step) for step in claims["steps"])
            challenge = Challenge(str(claims["sub"]), steps, str(claims["jti"]),
                                  int(claims["exp"]))
        except jwt.ExpiredSignatureError as exc:
            raise ChallengeRefused("the challenge expired; ask for a new one") from exc
        except (jwt.InvalidTokenError, KeyError, TypeError, ValueError) as exc:
            raise ChallengeRefused("the challenge is not one of ours (forged, altered or"
                                   " malformed)") from exc
        if not steps or not 0 < len(challenge.nonce) <= 64:
            raise ChallengeRefused("the challenge is not one of ours (malformed)")
        if challenge.username != username:
            raise ChallengeRefused("the challenge was made for another user")
        return challenge


class UsedNonces:
    """The nonces of the challenges this worker saw used, here or announced by other workers,
    each kept until its challenge expires (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._used: dict[str, int] = {}  # nonce -> expiry, in insertion order
        self._contested: set[str] = set()  # nonces another worker announced too

    def __len__(self) -> int:
        return len(self._used)

    def claim(self, nonce: str, expires_at: int) -> bool:
        """Take ``nonce`` for a verification here; False when it was used already."""
        self._forget_expired()
        if nonce in self._used:
            return False
        self._keep(nonce, expires_at)
        return True

    def heard(self, nonce: str, expires_at: int) -> None:
        """Another worker took ``nonce``: refuse it here, and fail a verification of it that
        is running here."""
        self._forget_expired()
        if nonce in self._used:
            self._contested.add(nonce)
        self._keep(nonce, expires_at)

    def contested(self, nonce: str) -> bool:
        """Whether another worker announced ``nonce`` while it was being verified here."""
        return nonce in self._contested

    def _keep(self, nonce: str, expires_at: int) -> None:
        self._used[nonce] = expires_at
        while len(self._used) > _MAX_KEPT:  # the oldest first: the nearest to expiry
            oldest = next(iter(self._used))
            del self._used[oldest]
            self._contested.discard(oldest)

    def _forget_expired(self) -> None:
        # Every challenge lives as long, so insertion order is nearly expiry order: stop at
        # the first one still alive (one kept a little too long is only refused longer).
        now = self._clock()
        while self._used:
            nonce, expires_at = next(iter(self._used.items()))
            if expires_at >= now:
                break
            del self._used[nonce]
            self._contested.discard(nonce)
