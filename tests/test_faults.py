"""kill -9 in the fleet layout (issue 12, part 4).

Auth, vision, messaging and the bridge run as separate processes against a private Mosquitto
and a private PostgreSQL (tests/fleet_layout.py). While a burst of message sends and face
enrolments goes through the bridge (tests/burst.py), each of them is killed with ``kill -9`` in
turn, then the broker, then PostgreSQL, and restarted a second later by the test, which plays
the supervisor. Afterwards, read back through the HTTP API: every send and enrolment
acknowledged with success is there, no message is stored twice, and no process hung (each
answered again within ``RECOVER_WITHIN`` seconds of its kill, and each stops on SIGTERM). The
time each kill took to recover from is printed (``pytest -s``) and kept in
docs/operations.md.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import httpx
import pytest

from tests.burst import TRANSIENT, Burst
from tests.conftest import FACES, needs_photos
from tests.fleet_layout import ROLES, ROOT, Fleet
from tests.support import process_tree, running

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

# Each role, then vision's analysis worker (which the service replaces itself), then the broker
# and the database server.
FAULTS = (*ROLES, "vision worker", "broker", "postgres")
RECOVER_WITHIN = 90.0  # seconds from a kill until every role answers through the bridge again
RESTART_AFTER = 1.0  # seconds the supervisor waits before restarting what died
STEADY = 4.0  # seconds of undisturbed burst before each kill
PASSWORD = "faults-pw-1"
PHOTOS = sorted((FACES / "train").glob("*/*.jp*g"))

Probe = Callable[[httpx.AsyncClient], Awaitable[bool]]


def success(response: httpx.Response) -> bool:
    return response.status_code == 200 and response.json().get("result") == "success"


def probes(users: list[str], admin_token: str, photo: Path | None = None) -> dict[str, Probe]:
    """One request per role that only succeeds when that role (and the bridge, the broker and
    the role's database) works; vision's recognises ``photo`` too (its worker process)."""

    async def auth(http: httpx.AsyncClient) -> bool:
        return success(await http.post("/login", data={"username": users[0],
                                                       "password": PASSWORD}))

    async def vision(http: httpx.AsyncClient) -> bool:
        response = await http.get("/api/face", params={"limit": 1},
                                  headers={"Authorization": f"Bearer {admin_token}"})
        if response.status_code != 200:
            return False
        return photo is None or success(await http.post(
            "/face", files={"face_image": (photo.name, photo.read_bytes())}))

    async def messaging(http: httpx.AsyncClient) -> bool:
        return success(await http.get(f"/get_messages/{users[0]}", params={"limit": 1}))

    async def bridge(http: httpx.AsyncClient) -> bool:
        return (await http.get("/whoami")).status_code == 401  # the bridge's own answer

    return {"auth": auth, "vision": vision, "messaging": messaging, "bridge": bridge}


async def answering(http: httpx.AsyncClient, checks: dict[str, Probe], within: float) -> float:
    """Seconds until every probe succeeded (each once, in any order); AssertionError naming the
    roles that did not answer ``within`` seconds."""
    started = time.monotonic()
    pending = dict(checks)
    while pending:
        for name, check in list(pending.items()):
            try:
                if await check(http):
                    del pending[name]
            except (httpx.TransportError, ValueError):
                pass
        if pending and time.monotonic() - started > within:
            raise AssertionError(f"{sorted(pending)} did not answer within {within:g} s")
        if pending:
            await asyncio.sleep(0.1)
    return time.monotonic() - started


async def once_up(send: Callable[[], Awaitable[httpx.Response]]) -> httpx.Response:
    """``send``'s answer once the services it needs have started (no 503/504 any more)."""
    async with asyncio.timeout(90):
        while (response := await send()).status_code in TRANSIENT:
            await asyncio.sleep(0.2)
    return response


async def set_up(http: httpx.AsyncClient) -> tuple[list[str], str, list[Path]]:
    """Users, a face admin and the photos that enrol (exactly one clear face each)."""
    users = [f"faults-user-{n}" for n in range(3)]
    for user in users:
        form = {"username": user, "password": PASSWORD, "email": f"{user}@example.com"}
        response = await once_up(partial(http.post, "/register/user", data=form))
        assert success(response), response.text
    admin = {"username": "faults-admin", "password": PASSWORD}
    assert (await http.post("/jwt/register", json=admin)).status_code == 201
    token = (await http.post("/jwt/login", json=admin)).json()["token"]
    usable = []
    for photo in PHOTOS:
        form = {"displayname": f"setup-{photo.stem}"}
        files = {"face_image": (photo.name, photo.read_bytes())}
        response = await once_up(partial(http.post, "/register/face", data=form,
                                         files=files))
        if success(response):
            usable.append(photo)
    assert len(usable) >= 3, f"only {usable} of {PHOTOS} enrol"
    return users, token, usable


def kill(fleet: Fleet, target: str) -> None:
    if target == "vision worker":
        workers = fleet.roles["vision"].workers()
        assert workers, "the vision service has no worker process"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
    elif target == "broker":
        fleet.broker.kill()
    elif target == "postgres":
        fleet.database.kill()
    else:
        fleet.roles[target].kill()


def restart(fleet: Fleet, target: str) -> None:
    """What a supervisor does: start it again, without waiting for it. A vision worker is
    the vision service's to replace."""
    if target == "vision worker":
        return
    if target == "broker":
        fleet.broker.start()
    elif target == "postgres":
        fleet.database.spawn()
    else:
        fleet.roles[target].start()


async def stored_messages(http: httpx.AsyncClient, users: list[str]) -> Counter[str]:
    """How often each content is stored, over every receiver's pages."""
    contents: Counter[str] = Counter()
    for user in users:
        before: int | None = None
        while True:
            params = {"limit": 200} | ({"before": before} if before else {})
            page = (await http.get(f"/get_messages/{user}", params=params)).json()
            assert page["result"] == "success", page
            contents.update(message["content"] for message in page["messages"])
            before = page["next_before"]
            if before is None:
                break
    return contents


async def stored_faces(http: httpx.AsyncClient, token: str) -> dict[str, int]:
    """Each enrolled face's name and how many embeddings it holds."""
    faces: dict[str, int] = {}
    while True:
        page = (await http.get("/api/face", params={"offset": len(faces), "limit": 500},
                               headers={"Authorization": f"Bearer {token}"})).json()
        faces.update({face["id"]: face["descriptors"] for face in page["data"]})
        if len(faces) >= page["total"] or not page["data"]:
            return faces


@needs_photos
async def test_kill_9_of_every_part_loses_and_repeats_nothing(tmp_path: Path) -> None:
    with Fleet(tmp_path) as fleet:
        async with httpx.AsyncClient(base_url=fleet.bridge_url, timeout=30) as http:
            await answering(http, {"bridge": probes([], "")["bridge"]}, 90)
            users, token, photos = await set_up(http)
            checks = probes(users, token, photos[0])
            await answering(http, checks, 60)
            burst = Burst(http, users, photos)
            burst.start()
            rows = []
            for target in FAULTS:
                await asyncio.sleep(STEADY)
                burst.check()
                calm = time.monotonic() - STEADY
                assert burst.ledger.successes_since(calm, "send") > 0, "no sends got through"
                failures = sum(burst.ledger.failures.values())
                kill(fleet, target)
                killed = time.monotonic()
                await asyncio.sleep(RESTART_AFTER)
                restart(fleet, target)
                recovered = await answering(http, checks, RECOVER_WITHIN) + RESTART_AFTER
                rows.append((target, recovered, sum(burst.ledger.failures.values()) - failures))
                for name, role in fleet.roles.items():
                    assert role.exit_code is None, f"{name} exited:\n{role.tail()}"
                assert time.monotonic() - killed < RECOVER_WITHIN + 5
            await asyncio.sleep(STEADY)
            await burst.stop()
            burst.check()
            ledger = burst.ledger
            print(f"\n{len(ledger.sent)} messages sent ({ledger.retried} needed a retry), "
                  f"{len(ledger.enrolled)} faces enrolled, {len(ledger.enrol_failed)} "
                  "enrolments failed; failed attempts by reason:")
            for reason, count in ledger.failures.most_common():
                print(f"  {count:5d}  {reason}")
            print("kill -9 of      recovered after   failed attempts meanwhile")
            for target, seconds, failed in rows:
                print(f"  {target:13s}  {seconds:6.1f} s  {failed:8d}")

            assert ledger.unresolved == [], "sends that never succeeded after recovery"
            stored = await stored_messages(http, users)
            burst_contents = {content for _, content in ledger.sent.values()}
            stored_burst = {content: n for content, n in stored.items()
                            if content.startswith("burst ")}
            lost = burst_contents - set(stored_burst)
            twice = {content: n for content, n in stored_burst.items() if n > 1}
            assert not lost, f"{len(lost)} acknowledged messages lost, e.g. {sorted(lost)[:5]}"
            assert not twice, f"{len(twice)} messages stored more than once: {twice}"
            assert set(stored_burst) == burst_contents  # nothing stored that was not sent

            faces = await stored_faces(http, token)
            missing = [name for name in ledger.enrolled if faces.get(name, 0) < 1]
            doubled = [name for name in ledger.enrolled if faces.get(name, 0) > 1]
            assert not missing, f"{len(missing)} acknowledged enrolments lost: {missing[:5]}"
            assert not doubled, f"enrolled once, stored more often: {doubled[:5]}"
            # The restarted vision service's gallery, not only its database: a photo is
            # recognised as one of the names it was enrolled under.
            photo = photos[0]
            response = await http.post("/face", files={"face_image": (photo.name,
                                                                      photo.read_bytes())})
            names = {name for name, used in ledger.enrolled.items() if used == photo.name}
            assert response.json()["face"] in names | {f"setup-{photo.stem}"}, response.text
            ghosts = [name for name in ledger.enrol_failed if name in faces]
            print(f"{len(ghosts)} of {len(ledger.enrol_failed)} failed enrolments were stored "
                  "all the same (their reply was lost)")
        exits = fleet.stop_roles()
        assert exits == dict.fromkeys(exits, 0), {
            name: (code, fleet.roles[name].tail()) for name, code in exits.items() if code != 0}


# A test process of its own that starts the fleet, says where its database lives, and waits.
_FLEET_ALONE = """
import sys, time
from pathlib import Path
from tests.fleet_layout import Fleet
with Fleet(Path(sys.argv[1])) as fleet:
    print(fleet.database.directory, flush=True)
    time.sleep(600)
"""


async def test_nothing_outlives_a_test_process_killed_with_kill_9(tmp_path: Path) -> None:
    test = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _FLEET_ALONE, str(tmp_path), cwd=ROOT,
        stdout=asyncio.subprocess.PIPE)
    assert test.stdout is not None
    tree: set[int] = set()
    database: Path | None = None
    try:
        database = Path((await asyncio.wait_for(test.stdout.readline(), 60)).decode().strip())
        # The test process, Mosquitto, PostgreSQL and its 5 helpers, four roles, the vision
        # worker and its resource tracker: wait until all are there.
        async with asyncio.timeout(60):
            while len(tree := process_tree(test.pid)) < 14:
                await asyncio.sleep(0.2)
        test.send_signal(signal.SIGKILL)
        await test.wait()
        async with asyncio.timeout(15):
            while any(running(pid) for pid in tree):
                await asyncio.sleep(0.1)
    except TimeoutError:
        left = [pid for pid in tree | process_tree(test.pid) if running(pid)]
        for pid in left:  # the test's own: it must not leave them either
            os.kill(pid, signal.SIGKILL)
        raise AssertionError(f"{len(left)} of {len(tree)} processes outlived the test "
                             "process (or never started)") from None
    finally:
        if test.returncode is None:
            test.kill()
            await test.wait()
        if database is not None:
            shutil.rmtree(database, ignore_errors=True)
