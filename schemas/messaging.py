"""Payloads and topics of the messaging service (``svc/messaging/*``) and of the mirror itself.

Messages between users, widget layouts per mirror model (and per user), and what a mirror is
told to show (``mirrors/{mirror_id}/display``). Timestamps on the wire are UTC,
``YYYY-MM-DD HH:MM:SS``, as the API documents them. The error codes the messaging service adds
are :class:`MessagingError`.
"""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
)

from schemas.files import FileRef
from schemas.names import MirrorId, Username
from schemas.topics import Operation, Topic

CONTENT_MAX = 2000
MODEL_CODE_MAX = 64
LAYOUT_TEXT_MAX = 4096
GRID_MAX = 12  # rows and columns of a mirror's widget grid
MESSAGE_ID_MAX = 2**31 - 1
TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"

WIDGETS = frozenset({
    "time", "date", "weather", "calendar", "messages", "news", "todo", "quote", "music",
    "traffic", "stocks", "photos", "compliments", "health",
})
"""Widget names a layout may place (docs/http-api.md lists them)."""


class MessagingError(StrEnum):
    """Error codes specific to the messaging service."""

    SENDER_NOT_FOUND = "sender_not_found"
    RECEIVER_NOT_FOUND = "receiver_not_found"
    USER_NOT_FOUND = "user_not_found"  # a layout or message list for an unknown user
    LAYOUT_NOT_FOUND = "layout_not_found"
    DUPLICATE_ID = "duplicate_id"  # a message_id already used for a different message
    MIRROR_NOT_FOUND = "mirror_not_found"
    # The file store (schemas/files.py) and messages' attachments.
    FILE_NOT_FOUND = "file_not_found"  # no file with that key (of that owner)
    QUOTA_EXCEEDED = "quota_exceeded"  # the owner's files would exceed their quota
    UPLOAD_NOT_FOUND = "upload_not_found"  # no such upload: committed, aborted or swept
    UPLOAD_OUT_OF_ORDER = "upload_out_of_order"  # a chunk's seq is not the next one
    TOO_MANY_UPLOADS = "too_many_uploads"  # the owner has as many uploads going as allowed


class LayoutError(ValueError):
    """A widget layout is malformed; the message says what and where."""


def _layout_text_to_json(text: str) -> str:
    """Rewrite the document's single-quoted form (``{'weather': [1, 1]}``) as JSON.

    Only a layout's alphabet is accepted: quoted names, digits, brackets, commas, colons and
    spaces. Nothing is evaluated.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            end = text.find(char, i + 1)
            if end < 0:
                raise LayoutError("a quoted widget name is not closed")
            name = text[i + 1:end]
            if "\\" in name or "'" in name or '"' in name:
                raise LayoutError(f"widget name {name!r} has quotes or backslashes")
            out.append(json.dumps(name))
            i = end + 1
            continue
        if not (char.isascii() and (char.isdigit() or char in "{}[](),:- \t\r\n+")):
            raise LayoutError(f"unexpected character {char!r} in the layout")
        out.append({"(": "[", ")": "]"}.get(char, char))
        i += 1
    return "".join(out)


def parse_layout(value: object) -> object:
    """A layout given as an object, as JSON text, or in the document's single-quoted form."""
    if not isinstance(value, str):
        return value
    if len(value) > LAYOUT_TEXT_MAX:
        raise LayoutError(f"the layout is longer than {LAYOUT_TEXT_MAX} characters")
    try:
        return json.loads(value)
    except json.JSONDecodeError:
        pass
    except RecursionError as exc:  # "[[[[..." within the length limit is deeper than json goes
        raise LayoutError("not a layout: nested far too deeply") from exc
    try:
        return json.loads(_layout_text_to_json(value))
    except json.JSONDecodeError as exc:
        raise LayoutError(f"not a layout: {exc.msg} at character {exc.pos}") from exc
    except RecursionError as exc:
        raise LayoutError("not a layout: nested far too deeply") from exc


def check_layout(value: object) -> dict[str, tuple[int, int]]:
    """``{widget: [row, column]}``: known widgets, positive positions in the grid, one widget
    per cell."""
    if not isinstance(value, dict) or not value:
        raise LayoutError("must be an object of widget: [row, column], e.g. {\"time\": [1, 1]}")
    layout: dict[str, tuple[int, int]] = {}
    taken: dict[tuple[int, int], str] = {}
    for name, position in value.items():
        if name not in WIDGETS:
            raise LayoutError(f"unknown widget {name!r}; known: {', '.join(sorted(WIDGETS))}")
        if (
            not isinstance(position, list | tuple) or len(position) != 2
            or not all(type(n) is int and 1 <= n <= GRID_MAX for n in position)
        ):
            raise LayoutError(
                f"{name}: position must be [row, column], integers from 1 to {GRID_MAX}"
            )
        cell = (position[0], position[1])
        if cell in taken:
            raise LayoutError(f"{name} and {taken[cell]} are both at {list(cell)}")
        taken[cell] = name
        layout[name] = cell
    return layout


def _layout(value: object) -> dict[str, tuple[int, int]]:
    return check_layout(parse_layout(value))


Layout = Annotated[
    dict[str, tuple[int, int]],
    BeforeValidator(_layout),
    WithJsonSchema({
        "type": "object", "minProperties": 1,
        "description": "Where each widget goes: a known widget name to its `[row, column]`, "
                       f"both from 1 to {GRID_MAX} (the mirror's grid); one widget per cell.",
        "propertyNames": {"enum": sorted(WIDGETS)},
        "additionalProperties": {"type": "array", "minItems": 2, "maxItems": 2,
                                 "items": {"type": "integer", "minimum": 1, "maximum": GRID_MAX}},
    }),
]
"""A validated widget layout; accepts an object, JSON text or the single-quoted form."""

ModelCode = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MODEL_CODE_MAX)
]
Content = Annotated[str, StringConstraints(min_length=1, max_length=CONTENT_MAX)]
# A send's idempotency key (the Idempotency-Key header, or a message_id field).
MessageId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", strict=True, frozen=True)


class SendRequest(_Strict):
    """Send ``content`` from one user to another.

    ``message_id`` makes a send idempotent: a second send with the same id stores nothing and
    answers the first one's reply with ``duplicate`` set (the bridge fills it from the
    ``Idempotency-Key`` header, or makes one up). ``attachment`` names a file of the sender's
    (schemas/files.py), which must exist when the message is stored.
    """

    sender_username: Username
    receiver_username: Username
    content: Annotated[Content, AfterValidator(_not_blank)]
    message_id: MessageId | None = None
    attachment: FileRef | None = None


class SendReply(BaseModel):
    message_id: str
    timestamp: str  # UTC, YYYY-MM-DD HH:MM:SS
    duplicate: bool = False


class MessagesRequest(_Strict):
    """The messages to ``receiver_username``, newest first, ``limit`` at a time; ``before`` (an
    ``id`` from a previous page) pages back. Numbers may come as text (query strings)."""

    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)

    receiver_username: Username
    limit: int = Field(default=50, ge=1, le=200)
    # Message ids are 32-bit (tortoise's IntField: INTEGER on PostgreSQL); beyond that SQLite
    # and asyncpg fail on the number instead of finding no messages.
    before: int | None = Field(default=None, ge=1, le=MESSAGE_ID_MAX)


class HistoryRequest(_Strict):
    """What ``username`` sent and received, newest first, ``limit`` at a time; ``before`` (an
    ``id`` from a previous page) pages back through both together."""

    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)

    username: Username
    limit: int = Field(default=50, ge=1, le=200)
    before: int | None = Field(default=None, ge=1, le=MESSAGE_ID_MAX)


class MessageOut(BaseModel):
    id: int
    sender: str
    content: str
    timestamp: str  # UTC, YYYY-MM-DD HH:MM:SS
    read: bool
    receiver: str | None = None  # whom it was sent to (a history has both ways)
    attachment: FileRef | None = None


class MessagesReply(BaseModel):
    messages: list[MessageOut]
    next_before: int | None  # pass as ``before`` for the next (older) page; None at the end


class SetLayoutRequest(_Strict):
    """Store the layout of ``model_code``; with ``username``, that user's own layout on mirrors
    of that model, which wins over the model's."""

    model_config = ConfigDict(extra="ignore", strict=False, frozen=True)

    model_code: ModelCode
    index: Layout
    username: Username | None = None


class SetLayoutReply(BaseModel):
    created: bool  # True: "New Widget", False: "Update Widget"


class GetLayoutRequest(_Strict):
    """The layout a mirror of ``model_code`` shows ``username`` (their own if they have one,
    else the model's), or the model's without ``username``."""

    model_code: ModelCode
    username: Username | None = None


class GetLayoutReply(BaseModel):
    index: dict[str, tuple[int, int]]
    scope: str  # "user" or "model": whose layout it is


class MirrorRequest(_Strict):
    mirror_id: MirrorId


class DisplayMessage(BaseModel):
    id: int
    sender: str
    content: str
    timestamp: str
    attachment: FileRef | None = None  # the name of the file the sender attached


class Display(BaseModel):
    """What a mirror shows: ``present`` with the person standing there, their layout and their
    unread messages, or ``idle`` with the model's layout.

    ``unlocked`` says whether the person's private content is shown: only a face enrolled with
    the user's token unlocks it; any other recognised face is greeted by name, with no
    messages."""

    mirror_id: str
    state: str  # "present" or "idle"
    user: str | None = None
    unlocked: bool = False
    layout: dict[str, tuple[int, int]]
    messages: list[DisplayMessage] = Field(default_factory=list)
    at: datetime


class MirrorWidgets(BaseModel):
    """A mirror's retained widget state: its model code and what each widget currently shows
    (free-form per widget)."""

    model_config = ConfigDict(extra="allow")

    model_code: ModelCode | None = None
    widgets: dict[str, Any] = Field(default_factory=dict)


class MirrorState(BaseModel):
    """What the messaging service knows of a mirror."""

    mirror_id: str
    status: str | None  # "online", "offline", or None when the mirror never said
    model_code: str | None
    widgets: dict[str, Any]
    display: Display | None
    updated_at: datetime | None


MESSAGING_SEND = Operation(
    "svc/messaging/send", SendRequest,
    "Store a message for a user and show it on the mirror they stand at. Sent at QoS 1 to a "
    "persistent session; requests past their deadline are dropped unstored.",
    reply=SendReply,
)
MESSAGING_LIST = Operation(
    "svc/messaging/messages", MessagesRequest, "A user's messages, newest first, paged.",
    reply=MessagesReply,
)
MESSAGING_HISTORY = Operation(
    "svc/messaging/history", HistoryRequest,
    "What a user sent and received, newest first, paged; with attachments' names.",
    reply=MessagesReply,
)
MESSAGING_SET_LAYOUT = Operation(
    "svc/messaging/widgets/set", SetLayoutRequest,
    "Store a widget layout for a mirror model, or a user's own for that model.",
    reply=SetLayoutReply,
)
MESSAGING_GET_LAYOUT = Operation(
    "svc/messaging/widgets/get", GetLayoutRequest, "The widget layout of a model (or user).",
    reply=GetLayoutReply,
)
MESSAGING_MIRROR = Operation(
    "svc/messaging/mirror", MirrorRequest,
    "A mirror's last known status, widget state and display, for operators.", reply=MirrorState,
)

MIRROR_DISPLAY = Topic(
    "mirrors/{mirror_id}/display", Display,
    "What the mirror shows now (retained, QoS 1): who stands there, their layout and messages.",
)
MIRROR_WIDGETS = Topic(
    "mirrors/{mirror_id}/widgets", MirrorWidgets,
    "The mirror's model code and widget state (retained JSON, published by the mirror).",
)
MIRROR_STATUS: Topic[BaseModel] = Topic(
    "mirrors/{mirror_id}/status", None,
    "The text online or offline (retained); offline is the mirror's Last Will.",
)
