"""Storing and listing messages; a send is idempotent by its ``message_id``."""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.transactions import in_transaction

from schemas.errors import ServiceError
from schemas.messaging import (
    TIMESTAMP_FORMAT,
    DisplayMessage,
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


def shown(message: Message) -> DisplayMessage:
    return DisplayMessage(id=message.id, sender=message.sender, content=message.content,
                          timestamp=timestamp(message.created_at))


class Messages:
    def __init__(self, users: Users) -> None:
        self.users = users

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
        try:
            row = await Message.create(message_id=message_id, sender=sender, receiver=receiver,
                                       content=req.content)
        except IntegrityError:  # the id is taken: a repeated send (QoS 1 redelivery, a retry)
            earlier = await Message.get(message_id=message_id)
            return self._repeat(earlier, sender, receiver, req.content), None
        reply = SendReply(message_id=message_id, timestamp=timestamp(row.created_at))
        return reply, row

    @staticmethod
    def _repeat(earlier: Message, sender: str, receiver: str, content: str) -> SendReply:
        if (earlier.sender, earlier.receiver, earlier.content) != (sender, receiver, content):
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
        query = Message.filter(receiver=receiver)
        if req.before is not None:
            query = query.filter(id__lt=req.before)
        rows = await query.order_by("-id").limit(req.limit + 1)
        page = rows[:req.limit]
        return MessagesReply(
            messages=[
                MessageOut(id=row.id, sender=row.sender, content=row.content,
                           timestamp=timestamp(row.created_at), read=row.read_at is not None)
                for row in page
            ],
            next_before=page[-1].id if len(rows) > req.limit else None,
        )

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
