"""A simulated camera: the images of a folder, played back at a frame rate.

Frames are the files' bytes, unchanged (``MIRROR_FRAME`` carries raw JPEG or PNG), in the order
of their names. Files are read one at a time as they are due, so a folder of a few thousand
extracted video frames costs one frame of memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path

from schemas.errors import ConfigError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
MAX_FPS = 30.0


def check_fps(fps: float) -> float:
    """``fps`` if it is a usable frame rate: above 0, at most :data:`MAX_FPS`."""
    if not 0 < fps <= MAX_FPS:  # also refuses NaN
        raise ConfigError(f"fps must be more than 0 and at most {MAX_FPS:g}, got {fps:g}")
    return fps


def check_count(count: int | None) -> int | None:
    """``count`` if it is None (no limit) or a number of frames, at least 1."""
    if count is not None and count < 1:
        raise ConfigError(f"frame count must be at least 1, got {count}")
    return count


@dataclass(frozen=True)
class FrameFolder:
    """The image files (``*.jpg``, ``*.jpeg``, ``*.png``, any case) of one folder, sorted by
    name; subfolders are not searched."""

    path: Path
    files: tuple[Path, ...]

    @classmethod
    def open(cls, path: Path | str) -> FrameFolder:
        """List the images of ``path``; a missing folder or one without images is a
        :class:`~schemas.errors.ConfigError` naming the folder."""
        folder = Path(path)
        if not folder.exists():
            raise ConfigError(f"frames folder {folder} does not exist")
        if not folder.is_dir():
            raise ConfigError(f"frames folder {folder} is not a folder")
        files = tuple(sorted(
            (entry for entry in folder.iterdir()
             if entry.suffix.lower() in IMAGE_SUFFIXES and entry.is_file()),
            key=lambda entry: entry.name,
        ))
        if not files:
            suffixes = ", ".join(f"*{suffix}" for suffix in IMAGE_SUFFIXES)
            raise ConfigError(f"frames folder {folder} holds no images ({suffixes})")
        return cls(folder, files)


async def play(
    folder: FrameFolder, fps: float, *, loop: bool = True, count: int | None = None
) -> AsyncGenerator[tuple[Path, bytes], None]:
    """Each frame's file and bytes, the first at once and then one every ``1/fps`` seconds.

    With ``loop`` the folder starts over after its last file; ``count`` stops after that many
    frames either way. A consumer slower than ``fps`` gets the next frame as soon as it asks:
    the schedule slips instead of bursting to catch up. A file that cannot be read any more is
    a :class:`~schemas.errors.ConfigError`.
    """
    period = 1 / check_fps(fps)
    check_count(count)
    clock = asyncio.get_running_loop().time
    due = clock()
    played = 0
    while True:
        for path in folder.files:
            if count is not None and played >= count:
                return
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except OSError as exc:
                raise ConfigError(f"cannot read frame {path}: {exc.strerror or exc}") from exc
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            yield path, data
            played += 1
            due = max(due + period, clock())
        if not loop:
            return
