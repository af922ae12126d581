"""Payloads and topics of the messaging service's file store (``svc/messaging/files/*``).

A file is known by its key: its ``owner`` (a username), its ``type`` (a short word such as
``profile``) and its ``name``. The key is only ever looked up, never turned into a path: the
bytes live content-addressed (by SHA-256) under the service's data directory.

Uploads and downloads travel in chunks of at most :data:`CHUNK_MAX` bytes, base64 in the JSON
body, so that one request stays well under the 256 KiB a service accepts
(``broker.runner.DEFAULT_MAX_PAYLOAD``): an upload is ``begin``, ``chunk`` (``seq`` 0, 1, ...),
then ``commit`` (or ``abort``); a download is ``stat``, then ``read`` at offsets.

Who may call: the broker lets only the role accounts (services, bridge, operator) publish to
``svc/#`` (broker/access.py, deploy/mosquitto-*.acl), so ``owner`` is taken as given; the bridge
puts the verified token's username there.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Annotated

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StringConstraints,
    WithJsonSchema,
)

from schemas.names import Username, nfc, printable
from schemas.topics import Operation

CHUNK_MAX = 128 * 1024  # raw bytes; 171 KiB as base64, under the 256 KiB payload limit
# MIRRORHUB_MAX_UPLOAD_BYTES unset: the largest file, which the bridge and the service enforce.
MAX_UPLOAD_DEFAULT = 10 * 1024 * 1024
FILE_TYPE_PATTERN = r"^[a-z0-9_-]{1,32}$"
FILE_NAME_MAX = 255
UPLOAD_ID_PATTERN = r"^[0-9a-f]{32}$"
SHA256_PATTERN = r"^[0-9a-f]{64}$"

FileType = Annotated[str, StringConstraints(pattern=FILE_TYPE_PATTERN)]
"""A file's type: 1 to 32 of ``a-z``, ``0-9``, ``_`` and ``-``."""

_SEPARATORS = re.compile(r"[/\\]")


def _a_name(value: str) -> str:
    if _SEPARATORS.search(value):
        raise ValueError("must be a name, without '/' or '\\'")
    if value in (".", ".."):
        raise ValueError("must be a name, not '.' or '..'")
    return printable(value)


FileName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=FILE_NAME_MAX),
    AfterValidator(_a_name),
    BeforeValidator(nfc),
]
"""A file's name: NFC, trimmed, 1 to 255 characters, no control characters (NUL included), no
``/`` or ``\\``, not ``.`` or ``..``. A key, never a path."""


def base_name(client_name: str) -> str:
    """What an upload's client-given file name is stored as: its last path segment (old
    browsers send ``C:\\Users\\ann\\me.png``, tools may send ``../me.png``). The result must
    still be a :data:`FileName`."""
    return _SEPARATORS.split(client_name)[-1]


def _from_base64(value: object) -> object:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be base64 (RFC 4648, with padding)") from exc
    return value


def _to_base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


Chunk = Annotated[
    bytes,
    BeforeValidator(_from_base64),
    Field(min_length=1, max_length=CHUNK_MAX),
    PlainSerializer(_to_base64, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "contentEncoding": "base64",
                    "description": f"1 to {CHUNK_MAX} bytes, base64 (RFC 4648, padded)."}),
]
"""Bytes of a file: base64 in JSON, raw bytes in Python."""

UploadId = Annotated[str, StringConstraints(pattern=UPLOAD_ID_PATTERN)]
Sha256 = Annotated[str, StringConstraints(pattern=SHA256_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class FileRef(_Strict):
    """A file of the sender's, named by a message: its type and name."""

    type: FileType
    name: FileName


class FileKey(_Strict):
    """One file of ``owner``'s."""

    owner: Username
    type: FileType
    name: FileName


class FileInfo(BaseModel):
    owner: str
    type: str
    name: str
    size: int
    content_type: str  # sniffed from the bytes at commit; application/octet-stream if unknown
    sha256: str


class BeginUpload(_Strict):
    """Start an upload for ``owner``; the key is given at commit (a form may name the type
    after the file)."""

    owner: Username


class UploadStarted(BaseModel):
    upload_id: str
    chunk_max: int  # the most bytes one chunk may carry


class UploadChunk(_Strict):
    """The next ``data`` of an upload; ``seq`` counts chunks from 0 and must be the next one."""

    upload_id: UploadId
    seq: int = Field(ge=0, le=2**31 - 1)
    data: Chunk


class ChunkReply(BaseModel):
    size: int  # bytes received so far


class CommitUpload(_Strict):
    """Store what the upload received as ``owner``'s file ``type``/``name``, replacing the
    file with that key if there is one."""

    upload_id: UploadId
    type: FileType
    name: FileName


class AbortUpload(_Strict):
    upload_id: UploadId


class AbortReply(BaseModel):
    aborted: bool  # False when there was no such upload (finished, aborted or swept)


class ReadRequest(_Strict):
    """``length`` bytes from ``offset`` of the file with that key, as long as its content is
    still ``sha256`` (a file replaced meanwhile is ``file_not_found``)."""

    owner: Username
    type: FileType
    name: FileName
    sha256: Sha256
    offset: int = Field(ge=0)
    length: int = Field(ge=1, le=CHUNK_MAX)


class ReadReply(BaseModel):
    data: Chunk  # fewer than ``length`` bytes only at the end of the file


FILES_BEGIN = Operation(
    "svc/messaging/files/begin", BeginUpload,
    "Start an upload of a file for a user; its bytes follow in chunks.", reply=UploadStarted,
)
FILES_CHUNK = Operation(
    "svc/messaging/files/chunk", UploadChunk,
    "The next chunk of an upload, written to a temporary file and hashed as it arrives.",
    reply=ChunkReply,
)
FILES_COMMIT = Operation(
    "svc/messaging/files/commit", CommitUpload,
    "Store an upload under its key: content-addressed, the same bytes kept once.",
    reply=FileInfo,
)
FILES_ABORT = Operation(
    "svc/messaging/files/abort", AbortUpload, "Drop an upload and what it received.",
    reply=AbortReply,
)
FILES_STAT = Operation(
    "svc/messaging/files/stat", FileKey, "Whether a user has a file, and its size and type.",
    reply=FileInfo,
)
FILES_READ = Operation(
    "svc/messaging/files/read", ReadRequest, "A range of a file's bytes.", reply=ReadReply,
)
