"""Declarations of the user/file/message API (seed 003: :mod:`bridge.user_accounts`,
:mod:`bridge.user_files`, :mod:`bridge.user_messages`) for ``/openapi.json``.

Replies are ``{"message": ...}`` with the seed's status codes; a token that does not do is
flask-jwt-extended's ``{"msg": ...}`` (401 or 422, the table in docs/http-api.md)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from bridge.messaging_spec import PageQuery
from bridge.spec import (
    FIELDS,
    MULTIPART,
    REPLY,
    Auth,
    Endpoint,
    Family,
    Fields,
    Idempotent,
    Link,
    Name,
    Person,
    Profile,
    Reply,
    merged,
)
from schemas.auth import Password
from schemas.messaging import CONTENT_MAX

TAG = "user"


class UserSaid(BaseModel):
    model_config = REPLY
    message: str


class TokenRefused(BaseModel):
    """flask-jwt-extended's reply to a token that does not do."""

    model_config = REPLY
    msg: str


def _said(description: str, *models: type[BaseModel]) -> Reply:
    return Reply(description, models or (UserSaid,))


_CALLS = {500: _said("The bridge or a service failed (Internal server error mybe database "
                     "problem, internal error)."),
          503: _said("The broker is unavailable."),
          504: _said("The service did not answer in time.")}
_READS = {400: _said("A field is missing or malformed (the message names it), or the body is "
                     "not a JSON object."),
          413: _said("The body exceeds the endpoint's limit."),
          415: _said("A content type other than JSON or a form.")}
_TOKEN = {401: _said("No Authorization header or no Bearer credential; the token expired or "
                     "was revoked.", TokenRefused),
          422: _said("A malformed token or header, or one whose signature does not verify.",
                     TokenRefused)}


class UserRegisterFields(Fields):
    username: Name
    password: Password
    first_name: Person
    last_name: Person
    profile: Profile | None = None


class UserLoginFields(Fields):
    username: Name
    password: Password


class LoggedIn(BaseModel):
    model_config = REPLY
    access_token: str
    message: Literal["login succeeded"]


class IdQuery(BaseModel):
    id: int | None = Field(default=None, ge=1, le=2**31 - 1,
                           description="Another account's id: its public fields only.")


class Record(BaseModel):
    model_config = REPLY
    ID: int
    first_name: str | None
    last_name: str | None
    password: Literal["********"]
    profile: str | None
    username: str


class Records(BaseModel):
    model_config = REPLY
    message: list[Record]


class ChangeFields(Fields):
    username: Name | None = None
    password: Password | None = None
    first_name: Person | None = None
    last_name: Person | None = None
    profile: Profile | None = None


class UploadFields(Fields):
    type: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    file: bytes


class FileQuery(BaseModel):
    type: str = Field(pattern=r"^[a-z0-9_-]{1,32}$")
    name: str = Field(min_length=1, max_length=255)


class MessageFields(Fields):
    text: str = Field(min_length=1, max_length=CONTENT_MAX)
    # Without one, or empty, the message is a note to the sender.
    receiver: Name | Literal[""] | None = None
    file_type: str | None = None
    file_name: str | None = None
    message_id: str | None = Field(default=None, min_length=1, max_length=64)


class Item(BaseModel):
    model_config = REPLY
    id: int
    sender: str
    receiver: str | None
    text: str
    file_type: str | None
    file_name: str | None
    timestamp: str
    read: bool


class History(BaseModel):
    model_config = REPLY
    sent: list[Item]
    received: list[Item]
    next_before: int | None


class HistoryReply(BaseModel):
    model_config = REPLY
    message: History


_THROTTLED = {429: Reply("Too many failed logins: wait `Retry-After` seconds.", (UserSaid,),
                         headers=("Retry-After",))}
_USE_TOKEN = {"header.Authorization": "Bearer {$response.body#/access_token}"}
_AFTER_LOGIN = tuple(Link(name, method, "/api/user", _USE_TOKEN)
                     for name, method in (("ReadOwnRecord", "GET"), ("DeleteAccount", "DELETE")))
_AFTER_REGISTER = (Link("LogIn", "POST", "/api/login", body={
    "username": "$request.body#/username", "password": "$request.body#/password"}),)
_NOT_EXISTS = "user dose not exists"


def _user(method: str, path: str, summary: str, replies: dict[int, Reply], *,
          reads: bool = True, body: type[BaseModel] | None = None,
          content: tuple[str, ...] = FIELDS, query: type[BaseModel] | None = None,
          headers: type[BaseModel] | None = None) -> Endpoint:
    """An endpoint that wants a token."""
    return Endpoint(method, path, TAG, summary,
                    merged(_CALLS, _READS if reads else {}, _TOKEN, replies), body=body,
                    content=content, query=query, headers=headers, auth=Auth.USER)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("POST", "/api/register", TAG, "Register an account",
             merged(_CALLS, _READS, {
                 201: Reply("user created successfully", (UserSaid,), links=_AFTER_REGISTER),
                 404: _said("your file not found: a profile names no upload (none exists yet "
                            "at registration)."),
                 409: _said("user already in use")}),
             body=UserRegisterFields),
    Endpoint("POST", "/api/login", TAG, "Log in: an access token",
             merged(_CALLS, _READS, _THROTTLED, {
                 202: Reply("login succeeded", (LoggedIn,), links=_AFTER_LOGIN),
                 403: _said("bad username or password")}),
             body=UserLoginFields),
    _user("GET", "/api/user", "An account's record (the token's own by default)", {
        200: Reply("The record.", (Records,)),
        404: _said(_NOT_EXISTS)}, query=IdQuery),
    _user("PUT", "/api/user", "Change the token's own account", {
        201: _said("user info modyfied successfully"),
        404: _said(f"{_NOT_EXISTS}, or your file not found (a profile names no upload)."),
        409: _said("user already in use")}, body=ChangeFields),
    _user("DELETE", "/api/user", "Delete the token's own account", {
        200: _said("deleted successfully"),
        402: _said(f"{_NOT_EXISTS}: the account is gone already.")}, reads=False),
    _user("POST", "/api/upload", "Store a file of the token's user", {
        200: _said("uploaded file successfully"),
        400: _said("malformed form, or more than one file part, or the client went away."),
        404: _said("missing file (or an empty one), or invalid type of name."),
        413: _said("The file exceeds the upload limit or the user's quota."),
        429: _said("too many uploads at once")}, body=UploadFields, content=(MULTIPART,)),
    _user("GET", "/api/download", "A file of the token's user", {
        200: Reply("The file's bytes, with the content type sniffed at upload.",
                   media_type="*/*", headers=("Content-Disposition", "ETag")),
        404: _said("your file not found")}, query=FileQuery),
    _user("POST", "/api/message", "Send a message from the token's user", {
        200: _said("message sent successfully"),
        404: _said("your file or format not found, invalid type of name, receiver not found, "
                   "or cant send message (not stored: sending again is safe)."),
        422: _said("this message_id was already used for another message")},
        body=MessageFields, headers=Idempotent),
    _user("GET", "/api/message", "What the token's user sent and received", {
        200: Reply("Newest first, both ways together.", (HistoryReply,))}, query=PageQuery),
)

FAMILY = Family(TAG, "Seed 003: accounts, files and messages.", ENDPOINTS, (UserSaid, TokenRefused))
