"""What happens to enrolled faces when their account is deleted or renamed (the vision side of
services/tombstones.py). Every worker hears the events and applies them itself: the database
changes are idempotent, so the workers sharing a database may all make them, and each then
refreshes its own in-memory gallery.

* **Deleted**: every photo bound to the account (``owner_id``, under whatever name), and every
  unbound photo enrolled under its username, go; so does the subject once it has no photo.
  Photos under that name bound to *another* account (the name taken again since) stay.
  Their kept recognitions (services/vision/recognitions.py) go with them.
* **Renamed**: the photos bound to the account move to the new name. Unbound photos under the
  old name stay there: nothing showed they were the account's, and they greet by name only.
"""

from __future__ import annotations

from schemas.auth import UserDeleted, UserRenamed
from services.vision.faces import Faces
from services.vision.models import FaceEmbedding, Subject
from services.vision.recognitions import Recognitions


class FaceAccounts:
    """:class:`services.tombstones.AccountData` for the enrolled faces."""

    def __init__(self, faces: Faces, recognitions: Recognitions) -> None:
        self.faces = faces
        self.recognitions = recognitions

    async def forget(self, gone: UserDeleted) -> None:
        names = await self._names_owned_by(gone.user_id) | {gone.username}
        await FaceEmbedding.filter(owner_id=gone.user_id).delete()
        subject = await Subject.get_or_none(name=gone.username)
        if subject is not None:
            await FaceEmbedding.filter(subject_id=subject.id, owner_id=None).delete()
        await self._drop_empty(names)
        await self.recognitions.forget(*names)
        await self.faces.refresh(*names)

    async def rename(self, change: UserRenamed) -> None:
        names = await self._names_owned_by(change.user_id)
        if not names - {change.new_username}:
            return  # nothing bound under another name: moved already, or never enrolled
        target, _ = await Subject.get_or_create(name=change.new_username)
        await FaceEmbedding.filter(owner_id=change.user_id).update(subject_id=target.id)
        await self._drop_empty(names)
        await self.faces.refresh(*names, change.new_username)

    @staticmethod
    async def _names_owned_by(user_id: int) -> set[str]:
        names = await FaceEmbedding.filter(owner_id=user_id).values_list("subject__name",
                                                                          flat=True)
        return {str(name) for name in names}

    @staticmethod
    async def _drop_empty(names: set[str]) -> None:
        """Delete the subjects among ``names`` that have no photo left: a name is personal data
        too."""
        for name in names:
            if not await FaceEmbedding.exists(subject__name=name):
                await Subject.filter(name=name).delete()
