"""The file store's disk: content-addressed blobs and the temporary files of uploads.

::

    {files_dir}/blobs/ab/abcdef0123...   a blob, named by the SHA-256 of its bytes
    {files_dir}/uploads/{upload_id}      an upload in progress

No name a client gives ever reaches a path here: blobs are named by their hash and uploads by a
random id the service made. A blob is written once, by an atomic rename of a complete, synced
upload, so a reader never sees half of one; the same bytes uploaded again find their blob there
and keep it. Every method blocks (disk I/O): :class:`~services.messaging.files.Files` calls them
in a thread.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import filetype  # type: ignore[import-untyped]  # no type hints

OCTET_STREAM = "application/octet-stream"


class Blobs:
    def __init__(self, root: Path) -> None:
        self.blobs = root / "blobs"
        self.uploads = root / "uploads"

    def open(self) -> int:
        """Make the folders; drop every upload a previous process left unfinished (their state
        died with it). Returns how many were dropped."""
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.uploads.mkdir(parents=True, exist_ok=True)
        left = list(self.uploads.iterdir())
        for path in left:
            path.unlink(missing_ok=True)
        return len(left)

    def path(self, sha256: str) -> Path:
        return self.blobs / sha256[:2] / sha256

    def upload_path(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def start(self, upload_id: str) -> None:
        self.upload_path(upload_id).touch(exist_ok=False)

    def append(self, upload_id: str, data: bytes, digest: hashlib._Hash) -> None:
        """Write ``data`` at the end of the upload and feed it to ``digest``."""
        with self.upload_path(upload_id).open("ab") as out:
            out.write(data)
        digest.update(data)

    def sniff(self, upload_id: str) -> str:
        """The upload's content type from its first bytes (the ``filetype`` library reads the
        first 8 KiB); :data:`OCTET_STREAM` when they match no known format (plain text too)."""
        mime = filetype.guess_mime(str(self.upload_path(upload_id)))
        return mime if isinstance(mime, str) else OCTET_STREAM

    def keep(self, upload_id: str, sha256: str) -> bool:
        """Make the upload the blob ``sha256``; if that blob exists already (the same bytes),
        drop the upload instead. True when a new blob was written."""
        source = self.upload_path(upload_id)
        target = self.path(sha256)
        if target.exists():
            source.unlink(missing_ok=True)
            return False
        with source.open("rb+") as handle:
            os.fsync(handle.fileno())
        target.parent.mkdir(exist_ok=True)
        os.replace(source, target)
        _sync_dir(target.parent)
        return True

    def drop_upload(self, upload_id: str) -> None:
        self.upload_path(upload_id).unlink(missing_ok=True)

    def remove(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def read(self, sha256: str, offset: int, length: int) -> bytes:
        """Up to ``length`` bytes from ``offset``; FileNotFoundError if the blob is gone."""
        with self.path(sha256).open("rb") as handle:
            handle.seek(offset)
            return handle.read(length)

    def stored(self) -> Iterator[str]:
        """The hash of every blob on disk."""
        for folder in self.blobs.iterdir():
            if folder.is_dir():
                for blob in folder.iterdir():
                    yield blob.name

    def count(self) -> int:
        return sum(1 for _ in self.stored())


def _sync_dir(folder: Path) -> None:
    """Make a rename into ``folder`` durable (POSIX wants the directory synced)."""
    with contextlib.suppress(OSError):  # not every file system lets a directory be opened
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
