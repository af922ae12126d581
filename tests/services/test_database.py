"""Opening a service's database: damaged SQLite files are refused with one error naming them,
promptly, and left byte for byte as they were; a missing file is a new database."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from schemas.errors import DatabaseError
from services.database import check_sqlite_file
from tests.databases import damaged_copies, make_pristine, open_and_close


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_pristine(tmp_path_factory.mktemp("pristine"))


async def test_damaged_files_are_refused_promptly_and_left_alone(
    pristine: Path, tmp_path: Path
) -> None:
    expected = {
        "truncated": "is truncated: its header counts",
        "garbage": "is not an SQLite database",
        "header": "has a damaged header (page size 3)",
        "page_one": "database disk image is malformed",
        "empty": "is empty (0 bytes)",
    }
    for name, (path, app) in damaged_copies(pristine, tmp_path).items():
        before = path.read_bytes()
        with pytest.raises(DatabaseError) as caught:
            await open_and_close(path, app)  # before: waited forever on tortoise's lock
        assert str(path) in str(caught.value) and expected[name] in str(caught.value), name
        assert path.read_bytes() == before, f"{name}: the file was written to"
        assert not path.with_name(path.name + "-wal").exists(), name


async def test_a_missing_file_is_a_new_database_and_a_whole_one_opens(
    pristine: Path, tmp_path: Path
) -> None:
    await open_and_close(tmp_path / "new" / "auth.sqlite3", "auth")
    assert (tmp_path / "new" / "auth.sqlite3").stat().st_size > 0
    copy = tmp_path / "messaging.sqlite3"
    shutil.copyfile(pristine / "messaging.sqlite3", copy)
    await open_and_close(copy, "messaging")


def test_a_non_empty_write_ahead_log_defers_the_size_check(
    pristine: Path, tmp_path: Path
) -> None:
    path = tmp_path / "messaging.sqlite3"
    shutil.copyfile(pristine / "messaging.sqlite3", path)
    with path.open("r+b") as handle:
        handle.truncate(path.stat().st_size - 4096)
    with pytest.raises(DatabaseError, match="is truncated"):
        check_sqlite_file(path)
    path.with_name(path.name + "-wal").write_bytes(b"\x00" * 32)
    check_sqlite_file(path)  # SQLite completes its checkpoint from the log when it opens
