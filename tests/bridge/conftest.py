"""The face admin stack (tests/bridge/face_stack.py), one per backend for the whole session:
tests/bridge/test_face_admin.py and test_face_admin_accounts.py need the same one, and each
start of it loads the vision engine and makes two databases."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.bridge.face_stack import FaceStack, face_stack
from tests.conftest import Backend


@pytest.fixture(scope="session")
async def face_admin_stack(
    backend: Backend, tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[FaceStack]:
    async with face_stack(backend, tmp_path_factory.mktemp("face002")) as found:
        yield found
