"""Fixtures for the vision tests: the shared photos, one dlib engine, each photo analysed once.

The photos live in ``shared/faces`` beside the repository (``/work/shared/faces`` for a repository
at ``/work/main``); tests that need them are skipped, with the path, where they are missing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from services.vision.dlib_engine import DlibEngine
from services.vision.matcher import Gallery
from tests.conftest import FACES, NO_PHOTOS, PHOTOS_ABSENT
from tests.services.vision.support import Photos


@pytest.fixture(scope="session")
def faces_dir() -> Path:
    if PHOTOS_ABSENT:
        pytest.skip(NO_PHOTOS)
    return FACES


@pytest.fixture(scope="session")
def engine() -> Iterator[DlibEngine]:
    with DlibEngine() as opened:
        yield opened


@pytest.fixture(scope="session")
def photos(faces_dir: Path, engine: DlibEngine) -> Photos:
    return Photos(faces_dir, engine)


@pytest.fixture(scope="session")
def enrolled(photos: Photos, engine: DlibEngine) -> Gallery:
    """Every ``train/<identity>/`` photo enrolled under its folder's name (one face each)."""
    gallery = Gallery(engine.dimension, engine.threshold)
    for relative in photos.listing("train"):
        (face,) = photos.faces(relative)
        gallery.add(Path(relative).parent.name, face.embedding)
    return gallery
