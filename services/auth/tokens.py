"""Login tokens: HS256 JWTs with a ``kid`` so keys can rotate.

The keyring comes from ``MIRRORHUB_JWT_KEYS`` (``kid:secret,kid:secret``; the first one signs,
all of them verify) or, when unset, from ``{data}/auth/jwt_keys.json``, generated on first run.
Every secret must be at least 32 bytes. Verification pins the algorithm, requires ``exp``, ``iat``,
``sub`` and ``jti``, and refuses unknown key ids. The ``jti`` (random, 128 bits) names one token,
so that logging out can revoke it alone; tokens issued before it was added are refused.
A refusal says why in its ``reason`` (:class:`schemas.auth.TokenReason`), as PyJWT classifies it.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jwt

from schemas.auth import AuthError, TokenReason
from schemas.errors import ConfigError, ServiceError

ALGORITHM = "HS256"
MIN_KEY_BYTES = 32
ISSUER = "mirrorhub-auth"
# Face admins' tokens (services/auth/admins.py): a token of one issuer never decodes as the other.
ADMIN_ISSUER = "mirrorhub-auth-admin"
JTI_MAX = 64  # the column that stores revoked ones


@dataclass(frozen=True)
class Claims:
    user_id: int
    username: str
    version: int
    jti: str
    issued_at: datetime
    expires_at: datetime


def _check(kid: str, secret: str) -> tuple[str, bytes]:
    key = secret.encode()
    if not kid or len(key) < MIN_KEY_BYTES:
        raise ConfigError(f"JWT key {kid!r} must have a name and at least {MIN_KEY_BYTES} bytes")
    return kid, key


class Keyring:
    """Named HMAC keys; ``current`` signs new tokens."""

    def __init__(self, keys: list[tuple[str, str]]) -> None:
        if not keys:
            raise ConfigError("the JWT keyring is empty")
        checked = [_check(kid, secret) for kid, secret in keys]
        self.current = checked[0][0]
        self._keys = dict(checked)

    @classmethod
    def parse(cls, spec: str) -> Keyring:
        pairs = []
        for item in spec.split(","):
            kid, sep, secret = item.strip().partition(":")
            if not sep:
                raise ConfigError("MIRRORHUB_JWT_KEYS must look like kid:secret[,kid:secret]")
            pairs.append((kid, secret))
        return cls(pairs)

    @classmethod
    def load_or_create(cls, path: Path) -> Keyring:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            kid = datetime.now(UTC).strftime("k%Y%m%d")
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump({"keys": [[kid, secrets.token_urlsafe(48)]]}, handle)
        data = json.loads(path.read_text())
        return cls([(kid, secret) for kid, secret in data["keys"]])

    def key(self, kid: str) -> bytes | None:
        return self._keys.get(kid)

    def sign(self, claims: dict[str, Any]) -> str:
        return jwt.encode(claims, self._keys[self.current], ALGORITHM,
                          headers={"kid": self.current})


class TokenIssuer:
    def __init__(self, keyring: Keyring, ttl_seconds: int) -> None:
        self.keyring = keyring
        self.ttl = timedelta(seconds=ttl_seconds)

    def issue(self, user_id: int, username: str, version: int,
              issuer: str = ISSUER) -> tuple[str, datetime]:
        """A token for the account ``user_id``; ``issuer`` :data:`ADMIN_ISSUER` for an admin."""
        now = datetime.now(UTC)
        expires = now + self.ttl
        token = self.keyring.sign({
            "sub": str(user_id), "name": username, "ver": version, "iss": issuer,
            "jti": secrets.token_urlsafe(16),
            "iat": int(now.timestamp()), "exp": int(expires.timestamp()),
        })
        return token, expires.replace(microsecond=0)

    def decode(self, token: str, issuer: str = ISSUER) -> Claims:
        """The token's claims, or ``token_invalid`` with its :class:`TokenReason` for anything
        forged, expired or malformed, or of another ``issuer`` (an admin's token where a user's
        is wanted, or the other way round). PyJWT classifies: its exception says which reason,
        and a malformed token's message is the exception's own text."""
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            key = self.keyring.key(kid) if isinstance(kid, str) else None
            if key is None:
                raise _invalid(TokenReason.SIGNATURE, "token signed with an unknown key")
            claims = jwt.decode(
                token, key, algorithms=[ALGORITHM], issuer=issuer,
                options={"require": ["exp", "iat", "sub", "iss", "jti"]},
            )
            jti = claims["jti"]
            if not isinstance(jti, str) or not 0 < len(jti) <= JTI_MAX:
                raise _invalid(TokenReason.MALFORMED, "token is not valid")
            return Claims(
                user_id=int(claims["sub"]),
                username=str(claims["name"]),
                version=int(claims["ver"]),
                jti=jti,
                issued_at=datetime.fromtimestamp(claims["iat"], UTC),
                expires_at=datetime.fromtimestamp(claims["exp"], UTC),
            )
        except jwt.ExpiredSignatureError as exc:
            raise _invalid(TokenReason.EXPIRED, "token expired") from exc
        except jwt.InvalidSignatureError as exc:
            raise _invalid(TokenReason.SIGNATURE, str(exc)) from exc
        except jwt.InvalidTokenError as exc:
            raise _invalid(TokenReason.MALFORMED, str(exc)[:200] or "token is not valid") from exc
        except (KeyError, ValueError, TypeError) as exc:  # a claim of ours missing or mistyped
            raise _invalid(TokenReason.MALFORMED, "token is not valid") from exc


def _invalid(reason: TokenReason, message: str) -> ServiceError:
    return ServiceError(AuthError.TOKEN_INVALID, message, reason=reason)
