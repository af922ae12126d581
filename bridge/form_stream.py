"""Reading one file out of a ``multipart/form-data`` body as it arrives, in bounded memory.

:mod:`bridge.forms` reads a whole body into memory, which is right for fields and wrong for a
10 MB file. :class:`FileForm` drives python-multipart's streaming parser instead: the caller
feeds it the body piece by piece (``request.stream()``) and takes the file's bytes out as they
accumulate (:meth:`FileForm.take`), so the bridge holds about one piece plus one chunk of a file,
whatever its size. The file's size is checked against its limit as its bytes arrive.

What it keeps: the first file part named ``file_field`` (its client-given file name and bytes)
and the text fields named in ``text_fields`` (the first of each name, at most
:data:`TEXT_MAX` bytes each: a longer value is kept cut off, so it fails validation). Every other
part is read and dropped. A part named ``file_field`` without a file name, or with an empty one
(what a browser sends when no file was chosen), is no file.
"""

from __future__ import annotations

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

TEXT_MAX = 256


class FormError(Exception):
    """The body cannot be used: ``status`` to answer and a message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class FileTooLarge(Exception):
    """The file part has grown beyond its limit."""


def boundary_of(content_type: str | None) -> bytes | None:
    """The boundary of a ``multipart/form-data`` content type; None for any other type."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    return boundary if kind == b"multipart/form-data" and boundary else None


class FileForm:
    def __init__(self, boundary: bytes, file_field: str, text_fields: frozenset[str],
                 max_file: int) -> None:
        self.file_field = file_field
        self.text_fields = text_fields
        self.max_file = max_file
        self.fields: dict[str, str] = {}
        self.file_name: bytes | None = None  # as the client sent it; None: no file part yet
        self.file_size = 0
        self.file_ended = False
        self._pending = bytearray()  # file bytes not taken yet
        self._part: str | None = None  # "file", a text field's name, or None: dropped
        self._text = bytearray()
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        try:
            self._parser = MultipartParser(boundary, {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._data,
                "on_part_end": self._part_end,
            })
        except FormParserError as exc:  # a boundary longer than the parser takes
            raise FormError(400, f"malformed form: {exc}") from exc

    def feed(self, data: bytes) -> None:
        """Parse the next piece of the body; :class:`FormError` for a malformed body,
        :class:`FileTooLarge` once the file exceeds ``max_file``."""
        try:
            self._parser.write(data)
        except FormParserError as exc:
            raise FormError(400, f"malformed form: {exc}") from exc

    def finish(self) -> None:
        """The body has ended: a file part must have ended with it."""
        self._parser.finalize()
        if self.file_name is not None and not self.file_ended:
            raise FormError(400, "malformed form: the body ends inside the file")

    @property
    def pending(self) -> int:
        return len(self._pending)

    def take(self, most: int) -> bytes:
        """Up to ``most`` of the file's bytes received and not taken yet."""
        data = bytes(self._pending[:most])
        del self._pending[:most]
        return data

    # python-multipart's callbacks, called from within feed().

    def _part_begin(self) -> None:
        self._part = None
        self._disposition = b""
        self._text.clear()

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if name == self.file_field and filename:
            if self.file_name is not None:
                raise FormError(400, f"send one file per upload (one {self.file_field!r} part)")
            self.file_name = filename
            self._part = "file"
        elif name in self.text_fields and filename is None and name not in self.fields:
            self._part = name

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._part == "file":
            self.file_size += end - start
            if self.file_size > self.max_file:
                raise FileTooLarge
            self._pending += data[start:end]
        elif self._part is not None and len(self._text) <= TEXT_MAX:
            self._text += data[start:min(end, start + TEXT_MAX + 1 - len(self._text))]

    def _part_end(self) -> None:
        if self._part == "file":
            self.file_ended = True
        elif self._part is not None:
            self.fields[self._part] = self._text.decode("utf-8", "replace")
        self._part = None
