"""Storing and listing messages; a send is idempotent by its ``message_id``.

A message may name a file of its sender's (``attachment``, schemas/files.py), which must exist
when the message is stored. The message keeps the name, not the bytes: it shows which file the
sender meant, and the file itself stays the sender's.
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.queryset import QuerySet
from tortoise.transactions import in_transaction

from schemas.errors import ServiceError
from schemas.files import FileRef
from schemas.messaging import (
    TIMESTAMP_FORMAT,
    DisplayMessage,
    HistoryRequest,
    MessageOut,
    MessagesReply,
    MessagesRequest,
    MessagingError,
    SendReply,
    SendRequest,
)
from services.messaging.models import Message
from services.messaging.users import Users


def timestamp(moment: datetime) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in UTC, as the API documents it."""
    return moment.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


def attachment(message: Message) -> FileRef | None:
    if message.attachment_type is None or message.attachment_name is None:
        return None
    return FileRef(type=message.attachment_type, name=message.attachment_name)


def shown(message: Message) -> DisplayMessage:
    return DisplayMessage(id=message.id, sender=message.sender, content=message.content,
                          timestamp=timestamp(message.created_at),
                          attachment=attachment(message))


class Attachments(Protocol):
    """Whether a user has a file (:class:`services.messaging.files.Files`)."""

    async def exists(self, owner: str, type_: str, name: str) -> bool: ...


class Messages:
    def __init__(self, users: Users, files: Attachments) -> None:
        self.users = users
        self.files = files

    async def send(self, req: SendRequest) -> tuple[SendReply, Message | None]:
        """Store the message once; the row is None when this send repeats an earlier one."""
        sender, receiver = req.sender_username, req.receiver_username
        message_id = req.message_id or uuid.uuid4().hex
        missing = await self.users.missing(sender, receiver)
        if sender in missing:
            raise ServiceError(MessagingError.SENDER_NOT_FOUND,
                               f"Not Found Sender: {sender}", "sender_username")
        if receiver in missing:
            raise ServiceError(MessagingError.RECEIVER_NOT_FOUND,
                               f"Not Found Receiver: {receiver}", "receiver_username")
        attached = req.attachment
        if attached is not None and not await self.files.exists(sender, attached.type,
                                                                attached.name):
            raise ServiceError(MessagingError.FILE_NOT_FOUND,
                               f"{sender} has no file {attached.type}/{attached.name}",
                               "attachment")
        try:
            row = await Message.create(
                message_id=message_id, sender=sender, receiver=receiver, content=req.content,
                attachment_type=attached.type if attached else None,
                attachment_name=attached.name if attached else None)
        except IntegrityError:  # the id is taken: a repeated send (QoS 1 redelivery, a retry)
            earlier = await Message.get(message_id=message_id)
            return self._repeat(earlier, req), None
        reply = SendReply(message_id=message_id, timestamp=timestamp(row.created_at))
        return reply, row

    @staticmethod
    def _repeat(earlier: Message, req: SendRequest) -> SendReply:
        same = (req.sender_username, req.receiver_username, req.content, req.attachment)
        if (earlier.sender, earlier.receiver, earlier.content, attachment(earlier)) != same:
            raise ServiceError(MessagingError.DUPLICATE_ID,
                               "this message_id was already used for another message",
                               "message_id")
        return SendReply(message_id=earlier.message_id, timestamp=timestamp(earlier.created_at),
                         duplicate=True)

    async def list(self, req: MessagesRequest) -> MessagesReply:
        receiver = req.receiver_username
        if await self.users.missing(receiver):
            raise ServiceError(MessagingError.USER_NOT_FOUND, "Not Found User",
                               "receiver_username")
        return await _page(Message.filter(receiver=receiver), req.before, req.limit)

    async def history(self, req: HistoryRequest) -> MessagesReply:
        """Messages ``username`` sent or received, newest first, one page of both together (a
        note to oneself is one message, both sent and received)."""
        user = req.username
        return await _page(Message.filter(Q(sender=user) | Q(receiver=user)), req.before,
                           req.limit)

    async def unread(self, receiver: str, limit: int) -> builtins.list[Message]:
        """The newest ``limit`` unread messages of ``receiver``, newest first."""
        return await Message.filter(receiver=receiver, read_at=None).order_by("-id").limit(limit)

    async def mark_read(self, ids: Sequence[int]) -> None:
        if ids:
            await Message.filter(id__in=list(ids), read_at=None).update(read_at=datetime.now(UTC))

    async def forget(self, username: str) -> None:
        """The account is gone: every message it sent or received goes too."""
        await Message.filter(Q(sender=username) | Q(receiver=username)).delete()

    async def rename(self, old: str, new: str) -> None:
        """Messages sent and received under ``old`` are ``new``'s now."""
        async with in_transaction():
            await Message.filter(sender=old).update(sender=new)
            await Message.filter(receiver=old).update(receiver=new)


async def _page(query: QuerySet[Message], before: int | None, limit: int) -> MessagesReply:
    """The newest ``limit`` messages of ``query`` older than id ``before``, and where the next
    page starts."""
    if before is not None:
        query = query.filter(id__lt=before)
    rows = await query.order_by("-id").limit(limit + 1)
    page = rows[:limit]
    return MessagesReply(
        messages=[
            MessageOut(id=row.id, sender=row.sender, receiver=row.receiver, content=row.content,
                       timestamp=timestamp(row.created_at), read=row.read_at is not None,
                       attachment=attachment(row))
            for row in page
        ],
        next_before=page[-1].id if len(rows) > limit else None,
    )
