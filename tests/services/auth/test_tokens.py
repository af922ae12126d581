"""JWTs: pinned algorithm, required claims, key rotation by ``kid``, minimum key length."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

import jwt
import pytest

from schemas.errors import ConfigError, ServiceError
from services.auth.tokens import ISSUER, Keyring, TokenIssuer

OLD = "old:" + "o" * 64
NEW = "new:" + "n" * 64


def test_issued_tokens_decode_and_carry_kid() -> None:
    issuer = TokenIssuer(Keyring.parse(NEW), 60)
    token, expires = issuer.issue(7, "ann", 3)
    assert jwt.get_unverified_header(token)["kid"] == "new"
    claims = issuer.decode(token)
    assert (claims.user_id, claims.username, claims.version) == (7, "ann", 3)
    assert claims.expires_at == expires
    assert claims.expires_at - claims.issued_at == timedelta(seconds=60)


def test_every_token_has_a_jti_of_its_own() -> None:
    issuer = TokenIssuer(Keyring.parse(NEW), 60)
    jtis = {issuer.decode(issuer.issue(7, "ann", 3)[0]).jti for _ in range(50)}
    assert len(jtis) == 50
    assert all(len(jti) >= 20 for jti in jtis)


def test_rotation_old_tokens_verify_while_their_key_is_listed() -> None:
    token, _ = TokenIssuer(Keyring.parse(OLD), 60).issue(1, "ann", 0)
    rotated = TokenIssuer(Keyring.parse(f"{NEW},{OLD}"), 60)
    assert rotated.decode(token).username == "ann"
    assert jwt.get_unverified_header(rotated.issue(1, "ann", 0)[0])["kid"] == "new"
    with pytest.raises(ServiceError, match="unknown key"):
        TokenIssuer(Keyring.parse(NEW), 60).decode(token)


def forge(claims: dict[str, object], key: str = "n" * 64, alg: str = "HS256",
          kid: str = "new") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


# Named ids: the tokens hold the time, and every worker of a parallel run must collect alike.
@pytest.mark.parametrize("token", [
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1}),  # no exp
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1, "exp": 2}),  # expired
    forge({"sub": "1", "name": "a", "ver": 0, "iss": "evil", "iat": 1,
           "exp": int(time.time()) + 60}),
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1,
           "exp": int(time.time()) + 60}, key="x" * 64),  # wrong key
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1,
           "exp": int(time.time()) + 60}, key="n" * 64, alg="HS512"),  # other algorithm
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1,
           "exp": int(time.time()) + 60}),  # no jti: issued before revocation existed
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1, "jti": 5,
           "exp": int(time.time()) + 60}),
    forge({"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": 1, "jti": "j" * 65,
           "exp": int(time.time()) + 60}),
    jwt.encode({"sub": "1", "exp": int(time.time()) + 60}, None, algorithm="none",
               headers={"kid": "new"}),
    "not-a-token",
], ids=["no-exp", "expired", "other-issuer", "wrong-key", "other-algorithm", "no-jti",
        "jti-not-text", "jti-too-long", "alg-none", "not-a-token"])
def test_forged_expired_and_malformed_tokens_are_refused(token: str) -> None:
    with pytest.raises(ServiceError) as caught:
        TokenIssuer(Keyring.parse(NEW), 60).decode(token)
    assert caught.value.code == "token_invalid"


@pytest.mark.parametrize("spec", ["short:abc", "nocolon", ":" + "x" * 40])
def test_weak_or_malformed_keys_are_refused(spec: str) -> None:
    with pytest.raises(ConfigError):
        Keyring.parse(spec)


def test_generated_keyring_is_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "auth" / "jwt_keys.json"
    first = Keyring.load_or_create(path)
    assert path.stat().st_mode & 0o777 == 0o600
    token = TokenIssuer(first, 60).issue(1, "a", 0)[0]
    assert TokenIssuer(Keyring.load_or_create(path), 60).decode(token).username == "a"


def _claims(**changes: object) -> dict[str, object]:
    # Valid for a year: these tokens are made when the tests are collected, maybe long before
    # they run.
    now = int(time.time())
    return {"sub": "1", "name": "a", "ver": 0, "iss": ISSUER, "iat": now, "jti": "j",
            "exp": now + 365 * 86400, **changes}


@pytest.mark.parametrize(("token", "reason", "message"), [
    ("abc", "malformed", "Not enough segments"),
    ("a.b.c", "malformed", "Invalid header padding"),
    (forge(_claims(exp=2, iat=1)), "expired", "token expired"),
    (forge(_claims(), key="x" * 64), "signature", "Signature verification failed"),
    (forge(_claims(), kid="gone"), "signature", "token signed with an unknown key"),
    (forge(_claims(iss="evil")), "malformed", "Invalid issuer"),
    (forge({k: v for k, v in _claims().items() if k != "jti"}), "malformed",
     'Token is missing the "jti" claim'),
    (forge(_claims(sub="one")), "malformed", "token is not valid"),
])
def test_a_refusal_says_why_in_pyjwts_words(token: str, reason: str, message: str) -> None:
    with pytest.raises(ServiceError) as caught:
        TokenIssuer(Keyring.parse(NEW), 60).decode(token)
    error = caught.value
    assert (error.code, error.reason, error.message) == ("token_invalid", reason, message)
    assert error.to_body().model_dump(exclude_none=True) == {
        "code": "token_invalid", "message": message, "reason": reason}
