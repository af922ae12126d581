"""Reading a request's fields, whatever way the client sent them, within a byte limit.

Fields come from the query string and from the body, which may be JSON (an object),
``application/x-www-form-urlencoded`` or ``multipart/form-data``; body fields win over query
fields of the same name. Files of a multipart body become :class:`Upload` values, read into
memory (the body already is, within its limit) so nothing is left open. A JSON body may nest
at most :data:`MAX_JSON_DEPTH` levels: the documented fields nest two (a layout's ``index``),
and deeper input would only reach code (``json``, pydantic, ``repr``) that recurses on it.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.formparsers import FormParser, MultiPartException, MultiPartParser
from starlette.requests import Request

MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


class BadBody(Exception):
    """The body cannot be used; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, or :class:`BadBody` 413 as soon as it is known to exceed ``limit``."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadBody(413, f"request body of {declared} bytes exceeds the limit of {limit}")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadBody(413, f"request body exceeds the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def _replay(body: bytes) -> AsyncGenerator[bytes, None]:
    yield body


async def read_fields(request: Request, limit: int) -> dict[str, Any]:
    """Query and body fields of ``request`` as one dict; files as :class:`Upload`."""
    fields: dict[str, Any] = dict(request.query_params)
    fields.update(await read_items(request, limit))
    return fields


async def read_items(request: Request, limit: int, *,
                     max_files: int = 8) -> list[tuple[str, Any]]:
    """The body's fields in the order sent, a name as often as it was sent (a form may repeat
    one); a multipart body may hold at most ``max_files`` files."""
    body = await read_body(request, limit)
    if not body.strip():
        return []
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/json", "") or content_type.endswith("+json"):
        try:
            data = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadBody(400, f"body is not valid JSON: {exc}") from exc
        except RecursionError as exc:  # the decoder's own depth limit (about 1000 here)
            raise BadBody(400, _TOO_DEEP) from exc
        if _depth_exceeds(data, MAX_JSON_DEPTH):
            raise BadBody(400, _TOO_DEEP)
        if not isinstance(data, dict):
            raise BadBody(400, "JSON body must be an object")
        return list(data.items())
    try:
        if content_type == "multipart/form-data":
            form = await MultiPartParser(request.headers, _replay(body), max_part_size=limit,
                                         max_files=max_files, max_fields=64).parse()
        elif content_type == "application/x-www-form-urlencoded":
            form = await FormParser(request.headers, _replay(body), max_part_size=limit,
                                    max_fields=64).parse()
        else:
            raise BadBody(415, f"unsupported content type {content_type!r}; send JSON or a form")
    except MultiPartException as exc:
        raise BadBody(400, f"malformed form: {exc.message}") from exc
    items: list[tuple[str, Any]] = []
    for key, value in form.multi_items():
        if isinstance(value, UploadFile):
            items.append((key, Upload(value.filename or "", value.content_type or "",
                                      await value.read())))
            await value.close()
        else:
            items.append((key, value))
    return items


_TOO_DEEP = f"JSON body is nested deeper than {MAX_JSON_DEPTH} levels"


def _depth_exceeds(data: object, limit: int) -> bool:
    """Whether ``data`` nests arrays and objects more than ``limit`` deep; without recursion."""
    pending: list[tuple[object, int]] = [(data, 1)]
    while pending:
        value, depth = pending.pop()
        if not isinstance(value, dict | list):
            continue
        if depth > limit:
            return True
        children = value.values() if isinstance(value, dict) else value
        pending.extend((child, depth + 1) for child in children)
    return False


def text_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """Fields with uploads removed, for operations whose payload is JSON only."""
    return {k: v for k, v in fields.items() if not isinstance(v, Upload)}
