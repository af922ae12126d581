"""Who is logged in to the admin page, and the CSRF check of its forms.

An admin logs in with a face admin account (seed 002's, ``svc/auth/admin_login``); the admin
token auth issues is the session, kept in the ``mirrorhub_admin`` cookie: ``HttpOnly`` (no
script reads it), ``SameSite=Strict`` (no other site's page sends it), ``Path=/admin``, and
``Secure`` when the page is served over HTTPS (the request's scheme, which uvicorn takes from
``X-Forwarded-Proto`` of a trusted proxy) or ``MIRRORHUB_COOKIE_SECURE`` is set. Every request
has auth check the token (``svc/auth/admin_verify``): a user's token, an expired or logged-out
one is no session. Bridges keep nothing, so any bridge behind a load balancer serves any page.

Every form that changes something carries a CSRF token, compared in constant time:

* once logged in, the SHA-256 of the session token under a label: another site can neither
  read the cookie nor compute it, and it changes with every login;
* the login form itself (a forged login would log the victim in as the attacker), a random
  value also set in the ``mirrorhub_admin_login`` cookie (double submit).

A POST whose ``Origin`` is another site's is refused as well, before anything else.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from bridge.replies import HttpFail, call
from schemas.admins import AUTH_ADMIN_VERIFY
from schemas.auth import TOKEN_MAX

SESSION = "mirrorhub_admin"
LOGIN_CSRF = "mirrorhub_admin_login"
PATH = "/admin"
LOGIN_CSRF_AGE = 3600  # seconds a login form may stay open


class Refused(Exception):
    """The request may not do this: ``status`` 401 (no session) or 403 (a bad CSRF token or
    a foreign origin), with why."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class AdminSession:
    username: str
    token: str

    @property
    def csrf(self) -> str:
        return csrf_of(self.token)


def csrf_of(token: str) -> str:
    return hashlib.sha256(b"mirrorhub admin csrf\0" + token.encode()).hexdigest()


def secure(request: Request) -> bool:
    return request.url.scheme == "https" or bool(getattr(request.state, "cookie_secure", False))


def set_cookie(request: Request, response: Response, name: str, value: str,
               max_age: int) -> None:
    """Written out, not with Response.set_cookie, whose SameSite is spelled lower case."""
    parts = [f"{name}={value}", "HttpOnly", f"Max-Age={max_age}", f"Path={PATH}",
             "SameSite=Strict"]
    if max_age == 0:
        parts.append("Expires=Thu, 01 Jan 1970 00:00:00 GMT")
    if secure(request):
        parts.append("Secure")
    response.headers.append("set-cookie", "; ".join(parts))


def clear_cookie(request: Request, response: Response, name: str) -> None:
    set_cookie(request, response, name, '""', 0)


async def session(request: Request) -> AdminSession | None:
    """The logged-in admin, or None: no cookie, or a token auth does not take as an admin's.
    A service that cannot answer is an :class:`~bridge.replies.HttpFail` (503/504), not a
    logout."""
    token = request.cookies.get(SESSION, "").strip()
    if not token or len(token) > TOKEN_MAX:
        return None
    try:
        reply = await call(request, "admin", AUTH_ADMIN_VERIFY, {"token": token})
    except HttpFail as exc:
        if exc.status >= 500:
            raise
        return None
    return AdminSession(reply.username, token)


async def required(request: Request) -> AdminSession:
    admin = await session(request)
    if admin is None:
        raise Refused(401, "log in as an admin first")
    return admin


def same_origin(request: Request) -> None:
    """Refuse a POST that a page of another site sent (browsers say so in ``Origin``). The
    host is compared, not the scheme: behind a TLS proxy the bridge may see plain HTTP."""
    origin = request.headers.get("origin")
    if origin is None:  # not a browser's form: the CSRF token decides
        return
    if origin.partition("://")[2] != request.url.netloc:
        raise Refused(403, f"a form of {origin} may not post here")


def check_csrf(sent: object, expected: str) -> None:
    if not isinstance(sent, str) or not expected or not hmac.compare_digest(
            sent.encode(), expected.encode()):
        raise Refused(403, "the form's CSRF token is missing or wrong: reload the page")


def login_csrf(request: Request) -> str:
    """The login form's token: the cookie's if the browser has one, else a new one."""
    current = request.cookies.get(LOGIN_CSRF, "")
    return current if 20 <= len(current) <= 64 else secrets.token_urlsafe(32)
