"""argon2id password hashing through the passlib API (``libpass``), off the event loop."""

from __future__ import annotations

import asyncio

from passlib.context import CryptContext


class PasswordHasher:
    """Hash and verify in a worker thread: argon2 is meant to be slow."""

    def __init__(self, memory_kib: int, time_cost: int) -> None:
        self._context = CryptContext(
            schemes=["argon2"],
            argon2__type="ID",
            argon2__memory_cost=memory_kib,
            argon2__rounds=time_cost,
            argon2__parallelism=1,
        )
        # Verified when the user is unknown, so both paths cost the same time.
        self._decoy = self._context.hash("mirrorhub-decoy-password")

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._context.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        target = password_hash or self._decoy
        ok = await asyncio.to_thread(self._context.verify, password, target)
        return ok and password_hash is not None
