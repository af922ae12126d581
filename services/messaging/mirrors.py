"""What each mirror last said about itself: retained ``status`` and ``widgets``.

Mirrors publish both retained, so a (re)starting service hears every mirror's latest word at
once; the rows keep it for operators (``svc/messaging/mirror``) and for the display, which needs
a mirror's model code to pick its layout.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError

from broker.client import Message
from schemas.errors import ServiceError
from schemas.messaging import (
    Display,
    MessagingError,
    MirrorRequest,
    MirrorState,
    MirrorWidgets,
)
from services.messaging.models import Mirror

log = logging.getLogger(__name__)

STATUSES = ("online", "offline")


class Mirrors:
    def __init__(self) -> None:
        self._model_codes: dict[str, str | None] = {}
        self.displays: dict[str, Display] = {}  # what each mirror was last told to show
        self.online: set[str] = set()  # mirrors whose last status was online (for metrics)

    async def on_status(self, message: Message) -> tuple[str, str] | None:
        """Store a mirror's status; returns (mirror_id, status), or None for a message that was
        not a status."""
        if not message.payload:  # cleared (a removed mirror's retained status)
            return None
        status = message.payload.decode("utf-8", "replace").strip().lower()
        if status not in STATUSES:
            log.warning("ignored status %r on %s: expected online or offline",
                        message.payload[:40], message.topic)
            return None
        mirror, _ = await Mirror.get_or_create(mirror_id=message.params["mirror_id"])
        if status == "online":
            self.online.add(mirror.mirror_id)
        else:
            self.online.discard(mirror.mirror_id)
        mirror.status = status
        await mirror.save(update_fields=["status", "updated_at"])
        return mirror.mirror_id, status

    async def on_widgets(self, message: Message) -> str | None:
        """Store a mirror's widget state; returns the mirror's id when its model code changed
        (its layout may change with it), else None."""
        if not message.payload:  # an empty retained payload clears the topic
            return None
        try:
            widgets = MirrorWidgets.model_validate_json(message.payload)
        except ValidationError as exc:
            log.warning("ignored widget state on %s: %s", message.topic,
                        exc.errors()[0]["msg"])
            return None
        mirror_id = message.params["mirror_id"]
        mirror, _ = await Mirror.get_or_create(mirror_id=mirror_id)
        changed = mirror.model_code != widgets.model_code
        mirror.model_code = widgets.model_code
        mirror.widgets = widgets.widgets
        await mirror.save(update_fields=["model_code", "widgets", "updated_at"])
        self._model_codes[mirror_id] = widgets.model_code
        return mirror_id if changed else None

    def forget(self, mirror_id: str) -> None:
        """The mirror is gone (its account was removed): drop what is kept of it here."""
        self.online.discard(mirror_id)
        self.displays.pop(mirror_id, None)
        self._model_codes.pop(mirror_id, None)

    async def model_code(self, mirror_id: str) -> str | None:
        if mirror_id not in self._model_codes:
            mirror = await Mirror.get_or_none(mirror_id=mirror_id)
            self._model_codes[mirror_id] = mirror.model_code if mirror else None
        return self._model_codes[mirror_id]

    async def state(self, req: MirrorRequest) -> MirrorState:
        mirror = await Mirror.get_or_none(mirror_id=req.mirror_id)
        display = self.displays.get(req.mirror_id)
        if mirror is None and display is None:
            raise ServiceError(MessagingError.MIRROR_NOT_FOUND,
                               f"no mirror {req.mirror_id} has been heard of", "mirror_id")
        return MirrorState(
            mirror_id=req.mirror_id,
            status=mirror.status if mirror else None,
            model_code=mirror.model_code if mirror else None,
            widgets=mirror.widgets if mirror else {},
            display=display,
            updated_at=mirror.updated_at if mirror else None,
        )
