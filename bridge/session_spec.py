"""Declarations of the session API (seed 004, :mod:`bridge.session_api`) for ``/openapi.json``:
every reply, failures included, is ``{"status_code": <the HTTP status>, "message": ...}``."""

from __future__ import annotations

from pydantic import BaseModel, Field

from bridge.session_api import MIN_LENGTH
from bridge.spec import PRINTABLE, REPLY, Auth, Endpoint, Family, Fields, Reply, merged
from schemas.auth import NAME_MAX, PASSWORD_MAX
from schemas.names import USERNAME_MAX

TAG = "session"


class SessionSaid(BaseModel):
    """Every reply of the family: ``status_code`` is the HTTP status."""

    model_config = REPLY
    status_code: int
    message: str


def _said(description: str, headers: tuple[str, ...] = ()) -> Reply:
    return Reply(description, (SessionSaid,), headers=headers)


_CALLS = {500: _said("The bridge or the auth service failed."),
          503: _said("The broker is unavailable."),
          504: _said("The auth service did not answer in time.")}
_READS = {400: _said("A field is missing, not a string, too short or too long (the message "
                     "says which), or the body is not a JSON object."),
          413: _said("The body exceeds 16 KiB."),
          415: _said("A content type other than JSON or a form.")}


# Strings of at least MIN_LENGTH characters (what the store keeps: names without surrounding
# spaces, passwords as typed) within the store's limits; anything else is the seed's 400.
_NAME = Field(min_length=MIN_LENGTH, max_length=USERNAME_MAX, json_schema_extra=PRINTABLE)


class SessionRegisterFields(Fields):
    fullname: str = Field(min_length=MIN_LENGTH, max_length=NAME_MAX,
                          json_schema_extra=PRINTABLE)
    username: str = _NAME
    password: str = Field(min_length=MIN_LENGTH, max_length=PASSWORD_MAX)


class SessionLoginFields(Fields):
    username: str = Field(min_length=1, max_length=USERNAME_MAX, json_schema_extra=PRINTABLE)
    password: str = Field(min_length=1, max_length=PASSWORD_MAX)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("GET", "/", TAG, "A greeting", {200: _said("You found me!"),
                                            500: _said("The bridge failed.")}),
    Endpoint("GET", "/home", TAG, "Greet the cookie's user",
             merged(_CALLS, {200: _said("Hello <fullname or username>"),
                             401: _said("Unauthorized users: no cookie, or one that does not "
                                        "verify.")}),
             auth=Auth.SESSION),
    Endpoint("POST", "/auth/register", TAG, "Register an account",
             merged(_CALLS, _READS, {201: _said("Successfully created account!")}),
             body=SessionRegisterFields),
    Endpoint("POST", "/auth/login", TAG, "Log in: sets the cookie",
             merged(_CALLS, _READS, {
                 200: _said("Login successfully!", ("Set-Cookie",)),
                 429: _said("Too many failures: wait `Retry-After` seconds.", ("Retry-After",))}),
             body=SessionLoginFields),
    Endpoint("DELETE", "/auth/logout", TAG, "Log out: revokes the token, clears the cookie",
             merged(_CALLS, {200: _said("Logged out", ("Set-Cookie",))}),
             auth=Auth.SESSION, auth_optional=True),
    Endpoint("DELETE", "/user/delete", TAG, "Delete the cookie's account",
             merged(_CALLS, {200: _said("Successfully deleted user!", ("Set-Cookie",)),
                             400: _said("Unauthorized users, or Failed to delete user!")}),
             auth=Auth.SESSION),
)

FAMILY = Family(TAG, "Seed 004: accounts with a session cookie.", ENDPOINTS, (SessionSaid,))
