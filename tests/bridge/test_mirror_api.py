"""The account endpoints of the smart-mirror API, HTTP -> bridge -> MQTT -> auth -> database."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from services.auth.accounts import RESET_HELD, RESET_SENT
from tests.support import MailSink, unique

pytestmark = pytest.mark.usefixtures("bridge_url")


async def register(http: httpx.AsyncClient, username: str, password: str = "pw-123",
                   email: str | None = None) -> httpx.Response:
    return await http.post("/register/user", data={
        "username": username, "password": password, "email": email or f"{username}@example.com",
    })


async def test_register_then_login_with_form_fields(http: httpx.AsyncClient) -> None:
    name = unique()
    reply = await register(http, name)
    assert reply.status_code == 200
    assert reply.json() == {"result": "success", "type": "register_user"}

    login = await http.post("/login", data={"username": name, "password": "pw-123"})
    assert login.status_code == 200
    body = login.json()
    assert body["result"] == "success" and body["type"] == "login"
    me = await http.get("/whoami", headers={"Authorization": f"Bearer {body['token']}"})
    assert me.json() == {"result": "success", "type": "whoami", "username": name}


async def test_json_bodies_are_accepted(http: httpx.AsyncClient) -> None:
    name = unique()
    reply = await http.post("/register/user", json={
        "username": name, "password": "pw", "email": f"{name}@example.com"})
    assert reply.json()["result"] == "success"
    login = await http.post("/login", json={"username": name, "password": "pw"})
    assert login.json()["type"] == "login" and login.json()["result"] == "success"


async def test_wrong_password_and_unknown_user_get_the_documented_fail(
    http: httpx.AsyncClient,
) -> None:
    name = unique()
    await register(http, name)
    expected = {"result": "fail", "type": "login",
                "message": "Please check your username or password"}
    wrong = await http.post("/login", data={"username": name, "password": "nope"})
    unknown = await http.post("/login", data={"username": unique(), "password": "pw-123"})
    assert (wrong.status_code, wrong.json()) == (200, expected)
    assert (unknown.status_code, unknown.json()) == (200, expected)


async def test_existing_user_gets_exist_user(http: httpx.AsyncClient) -> None:
    name = unique()
    await register(http, name)
    again = await register(http, name, password="other")
    assert again.status_code == 200
    assert again.json()["result"] == "fail"
    assert again.json()["message"] == "exist user"
    # the first password still works: nothing was overwritten
    login = await http.post("/login", data={"username": name, "password": "pw-123"})
    assert login.json()["result"] == "success"


@pytest.mark.parametrize("missing", ["username", "password", "email"])
async def test_missing_field_is_a_400_naming_it(http: httpx.AsyncClient, missing: str) -> None:
    fields = {"username": unique(), "password": "pw", "email": "a@example.com"}
    del fields[missing]
    reply = await http.post("/register/user", data=fields)
    assert reply.status_code == 400
    body = reply.json()
    assert body["result"] == "fail" and body["type"] == "register_user"
    assert body["field"] == missing and missing in body["message"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"username": 42, "password": "pw"}, "username"),
        ({"username": "ann", "password": ["pw"]}, "password"),
        ({"username": "ann", "password": ""}, "password"),
        ({"username": "   ", "password": "pw"}, "username"),
        ({"username": "x" * 65, "password": "pw"}, "username"),
        ({"username": "ann\x00", "password": "pw"}, "username"),
    ],
)
async def test_malformed_fields_are_a_400_naming_them(
    http: httpx.AsyncClient, payload: dict[str, object], field: str
) -> None:
    reply = await http.post("/login", json=payload)
    assert reply.status_code == 400
    assert reply.json()["type"] == "login" and reply.json()["field"] == field


async def test_bad_email_is_refused(http: httpx.AsyncClient) -> None:
    reply = await register(http, unique(), email="not-an-email")
    assert reply.status_code == 400 and reply.json()["field"] == "email"


async def test_body_that_is_not_json_or_a_form(http: httpx.AsyncClient) -> None:
    broken = await http.post("/login", content=b"{not json",
                             headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["type"] == "login"
    array = await http.post("/login", json=["ann", "pw"])
    assert array.status_code == 400
    xml = await http.post("/login", content=b"<x/>", headers={"content-type": "text/xml"})
    assert xml.status_code == 415 and xml.json()["result"] == "fail"


async def test_ten_megabyte_body_is_refused_and_nothing_written(
    http: httpx.AsyncClient,
) -> None:
    name = unique()
    huge = "x" * (10 * 1024 * 1024)
    reply = await http.post("/register/user", data={
        "username": name, "password": huge, "email": f"{name}@example.com"})
    assert reply.status_code == 413
    assert reply.json()["type"] == "register_user" and reply.json()["result"] == "fail"
    # The user was not half-created: registering now succeeds.
    assert (await register(http, name)).json()["result"] == "success"


@pytest.mark.parametrize("name", [
    "Zoë-Ångström", "用户名", "🪞mirror", "robert'); DROP TABLE auth_user;--", "a\" OR \"1\"=\"1",
])
async def test_unicode_and_sql_looking_usernames_round_trip(
    http: httpx.AsyncClient, name: str
) -> None:
    name = f"{name}{unique('')}"[:64]
    reply = await register(http, name, password="pässwörd", email="sql@example.com")
    assert reply.json()["result"] == "success"
    login = await http.post("/login", json={"username": name, "password": "pässwörd"})
    token = login.json()["token"]
    me = await http.get("/whoami", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["username"] == name


async def test_whoami_refuses_missing_and_forged_tokens(http: httpx.AsyncClient) -> None:
    missing = await http.get("/whoami")
    assert missing.status_code == 401 and missing.json()["type"] == "whoami"
    forged = await http.get("/whoami", headers={"Authorization": "Bearer abc.def.ghi"})
    assert forged.status_code == 401 and forged.json()["result"] == "fail"


async def test_reset_password_mails_a_single_use_code(
    http: httpx.AsyncClient, smtp: MailSink
) -> None:
    name = unique()
    email = f"{name}@example.com"
    await register(http, name, email=email)
    login = await http.post("/login", data={"username": name, "password": "pw-123"})
    old_token = login.json()["token"]

    reply = await http.post("/reset_password", data={"username": name, "email": email.upper()})
    assert reply.status_code == 200
    body = reply.json()
    assert body["result"] == "success" and body["type"] == "reset_password"
    assert isinstance(body["message"], str) and body["message"]

    mail = await smtp.wait_for(email)
    text = mail.get_content()
    code = text.split("Your reset code: ")[1].split()[0]
    assert code not in reply.text  # the HTTP reply never holds the token

    confirm = await http.post("/reset_password/confirm",
                              data={"token": code, "password": "new-pw"})
    assert confirm.json() == {"result": "success", "type": "reset_password_confirm",
                              "message": "Password changed"}
    again = await http.post("/reset_password/confirm", data={"token": code, "password": "x"})
    assert again.json()["result"] == "fail" and again.json()["field"] == "token"

    old = await http.post("/login", data={"username": name, "password": "pw-123"})
    assert old.json()["result"] == "fail"
    new = await http.post("/login", data={"username": name, "password": "new-pw"})
    assert new.json()["result"] == "success"
    # Tokens issued before the reset no longer verify.
    stale = await http.get("/whoami", headers={"Authorization": f"Bearer {old_token}"})
    assert stale.status_code == 401


async def test_reset_for_unknown_user_or_wrong_email(http: httpx.AsyncClient) -> None:
    name = unique()
    await register(http, name)
    expected = {"result": "fail", "type": "reset_password", "message": "Not Found User"}
    unknown = await http.post("/reset_password",
                              data={"username": unique(), "email": "a@example.com"})
    wrong_mail = await http.post("/reset_password",
                                 data={"username": name, "email": "other@example.com"})
    assert unknown.json() == expected and wrong_mail.json() == expected


async def test_a_burst_of_resets_mails_one_account_three_codes(
    http: httpx.AsyncClient, smtp: MailSink
) -> None:
    name = unique()
    email = f"{name}@example.com"
    await register(http, name, email=email)
    form = {"username": name, "email": email}
    replies = await asyncio.gather(*(http.post("/reset_password", data=form) for _ in range(50)))
    bodies = [reply.json() for reply in replies]
    assert {reply.status_code for reply in replies} == {200}
    assert {(b["result"], b["type"]) for b in bodies} == {("success", "reset_password")}
    messages = [b["message"] for b in bodies]
    assert (messages.count(RESET_SENT), messages.count(RESET_HELD)) == (3, 47)
    await asyncio.sleep(0.2)  # a fourth mail, were one sent, would have arrived by now
    assert sum(mail["To"] == email for mail in smtp.messages) == 3
    # Nothing new for somebody who does not know the address: still "Not Found User".
    wrong = await http.post("/reset_password", data={"username": name, "email": "x@example.com"})
    assert wrong.json()["message"] == "Not Found User"


async def test_unknown_path_and_method_are_json(http: httpx.AsyncClient) -> None:
    missing = await http.get("/no/such/thing")
    assert missing.status_code == 404 and missing.json()["result"] == "fail"
    wrong = await http.get("/login")
    assert wrong.status_code == 405 and wrong.json()["result"] == "fail"
