"""Widget layouts: one per mirror model, and a user's own per model, which wins for them."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from schemas.errors import ServiceError
from schemas.messaging import (
    GetLayoutReply,
    GetLayoutRequest,
    MessagingError,
    SetLayoutReply,
    SetLayoutRequest,
)
from services.messaging.models import Layout
from services.messaging.users import Users

Positions = dict[str, tuple[int, int]]

IDLE_LAYOUT: Positions = {"time": (1, 1), "date": (1, 2), "weather": (1, 3)}
"""What a mirror shows while nobody stands there and its model has no layout."""
PRESENT_LAYOUT: Positions = {"time": (1, 1), "weather": (1, 2), "messages": (2, 1)}
"""What a mirror shows a person when neither they nor the model have a layout."""


def _positions(raw: object) -> Positions:
    assert isinstance(raw, dict)
    return {name: (int(cell[0]), int(cell[1])) for name, cell in raw.items()}


class Layouts:
    def __init__(self, users: Users) -> None:
        self.users = users

    async def set(self, req: SetLayoutRequest) -> SetLayoutReply:
        username = req.username or ""
        if username and await self.users.missing(username):
            raise ServiceError(MessagingError.USER_NOT_FOUND, "Not Found User", "username")
        positions = {name: list(cell) for name, cell in req.index.items()}
        updated = await Layout.filter(model_code=req.model_code, username=username).update(
            positions=positions
        )
        if updated:
            return SetLayoutReply(created=False)
        try:
            await Layout.create(model_code=req.model_code, username=username, positions=positions)
        except IntegrityError:  # a concurrent first save won; ours is the update
            await Layout.filter(model_code=req.model_code, username=username).update(
                positions=positions
            )
            return SetLayoutReply(created=False)
        return SetLayoutReply(created=True)

    async def get(self, req: GetLayoutRequest) -> GetLayoutReply:
        found = await self.find(req.model_code, req.username)
        if found is None:
            raise ServiceError(MessagingError.LAYOUT_NOT_FOUND, "Not Found Widget", "model_code")
        positions, scope = found
        return GetLayoutReply(index=positions, scope=scope)

    async def find(self, model_code: str, username: str | None) -> tuple[Positions, str] | None:
        """The user's own layout for ``model_code`` if they have one, else the model's."""
        names = [username, ""] if username else [""]
        rows = await Layout.filter(model_code=model_code, username__in=names)
        by_user = {row.username: row for row in rows}
        for name in names:
            if name in by_user:
                return _positions(by_user[name].positions), "user" if name else "model"
        return None

    async def for_display(self, model_code: str | None, username: str | None) -> Positions:
        """The layout a mirror shows: stored, else the built-in present or idle one."""
        found = await self.find(model_code, username) if model_code else None
        if found is not None:
            return found[0]
        return dict(PRESENT_LAYOUT if username else IDLE_LAYOUT)

    async def forget(self, username: str) -> None:
        """The account is gone: its own layouts go (the models' stay)."""
        if username:  # "" names the models' layouts, never a user
            await Layout.filter(username=username).delete()

    async def rename(self, old: str, new: str) -> None:
        """``old``'s layouts are ``new``'s now; where ``new`` already had one for a model (left
        from an earlier account of that name), the renamed user's wins."""
        if not old or not new:
            return
        async with in_transaction():
            models = await Layout.filter(username=old).values_list("model_code", flat=True)
            await Layout.filter(username=new, model_code__in=list(models)).delete()
            await Layout.filter(username=old).update(username=new)
