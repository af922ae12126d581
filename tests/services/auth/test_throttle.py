"""The throttle on a real database: what counts for a username and for an address, attempts
still running, two auth instances (two throttles on one database), and its settings."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from schemas.errors import ConfigError, ServiceError
from services.auth.config import AuthSettings
from services.auth.models import FailedAttempt
from services.auth.throttle import Limits, Throttle
from services.database import open_database
from tests.conftest import Backend, create_database, drop_database

LIMITS = Limits(max_failures=2, max_failures_per_address=3, window=timedelta(seconds=60))


@pytest.fixture
async def database(backend: Backend) -> AsyncIterator[None]:
    url = await create_database(backend, "throttle")
    try:
        async with open_database(url, "auth", "services.auth.models", "services.auth.migrations"):
            yield
    finally:
        await drop_database(url)


async def fail(throttle: Throttle, username: str, address: str | None = "192.0.2.1") -> None:
    async with throttle.attempt("login", username, address):
        pass  # not succeeded: a failure


async def refused(throttle: Throttle, username: str, address: str | None = "192.0.2.1") -> int:
    with pytest.raises(ServiceError) as caught:
        async with throttle.attempt("login", username, address) as attempt:
            attempt.succeeded()
    assert caught.value.code == "throttled"
    assert caught.value.retry_after is not None
    return caught.value.retry_after


@pytest.mark.usefixtures("database")
async def test_failures_count_successes_do_not() -> None:
    throttle = Throttle(LIMITS)
    async with throttle.attempt("login", "ann", None) as attempt:
        attempt.succeeded()
    assert await FailedAttempt.all().count() == 0
    await fail(throttle, "ann", None)
    await fail(throttle, "ann", None)
    assert 59 <= await refused(throttle, "ann", None) <= 60
    rows = await FailedAttempt.all()  # the two failures; the refusal left none
    assert [(r.username, r.address, r.pending) for r in rows] == [("ann", None, False)] * 2
    # A reset has counts of its own.
    async with throttle.attempt("reset", "ann", None) as attempt:
        attempt.succeeded()


@pytest.mark.usefixtures("database")
async def test_an_address_counts_failures_of_every_username() -> None:
    throttle = Throttle(LIMITS)
    for name in ("a", "b", "c"):
        await fail(throttle, name)
    await refused(throttle, "d")
    async with throttle.attempt("login", "d", "192.0.2.2") as attempt:  # another address
        attempt.succeeded()


@pytest.mark.usefixtures("database")
async def test_running_attempts_count_for_the_username_only() -> None:
    """Two instances (two throttles, each with its own one-at-a-time) on one database."""
    here, there = Throttle(LIMITS), Throttle(LIMITS)
    await fail(there, "zed", "192.0.2.1")
    async with here.attempt("login", "ann", "192.0.2.1"), here.attempt("login", "bob",
                                                                        "192.0.2.1"):
        await fail(there, "ann", "192.0.2.9")  # one running here, this one failed
        await refused(there, "ann", "192.0.2.9")  # running + failed: the limit
        # The address has one failure and two attempts running (3, its limit, if they
        # counted): they do not.
        await fail(there, "cid", "192.0.2.1")
    assert await FailedAttempt.filter(pending=True).count() == 0


@pytest.mark.usefixtures("database")
async def test_old_failures_leave_the_window_and_the_table() -> None:
    throttle = Throttle(LIMITS)
    await fail(throttle, "ann")
    await fail(throttle, "ann")
    await FailedAttempt.all().update(at=datetime.now(UTC) - timedelta(seconds=61))
    async with throttle.attempt("login", "ann", None) as attempt:
        attempt.succeeded()
    assert await FailedAttempt.all().count() == 0


def test_the_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = AuthSettings.from_env(Path("data"))
    assert (defaults.login_max_failures, defaults.login_max_failures_per_address,
            defaults.login_window) == (5, 50, 900.0)
    monkeypatch.setenv("MIRRORHUB_LOGIN_MAX_FAILURES", "3")
    monkeypatch.setenv("MIRRORHUB_LOGIN_MAX_FAILURES_PER_ADDRESS", "7")
    monkeypatch.setenv("MIRRORHUB_LOGIN_WINDOW", "1.5")
    given = AuthSettings.from_env(Path("data"))
    assert (given.login_max_failures, given.login_max_failures_per_address,
            given.login_window) == (3, 7, 1.5)
    monkeypatch.setenv("MIRRORHUB_LOGIN_WINDOW", "0")
    with pytest.raises(ConfigError, match="MIRRORHUB_LOGIN_WINDOW"):
        AuthSettings.from_env(Path("data"))
