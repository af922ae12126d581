"""Only the headless OpenCV build is installed, as DESIGN.md requires.

``opencv-python``, ``opencv-contrib-python`` and the headless builds all write the same ``cv2/``
package, so whichever was installed last wins; insightface's wheel pulls in the GUI build. A
GUI build on a server links display libraries it cannot use and may fail to import without them.
"""

from __future__ import annotations

import re
from importlib.metadata import PackageNotFoundError, distribution

import pytest

GUI_BUILDS = ("opencv-python", "opencv-contrib-python")


def _installed(name: str) -> bool:
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True


def test_headless_opencv_is_installed() -> None:
    assert _installed("opencv-python-headless")


@pytest.mark.parametrize("name", GUI_BUILDS)
def test_no_gui_opencv_is_installed(name: str) -> None:
    assert not _installed(name), f"{name} is installed; it overwrites the headless cv2"


def test_cv2_has_no_gui_backend() -> None:
    import cv2

    info = cv2.getBuildInformation()
    gui = re.search(r"^\s*GUI:\s*(\S+)", info, re.MULTILINE)
    assert gui is not None, "cv2.getBuildInformation() lists no GUI section"
    assert gui.group(1) == "NONE"
    for backend in ("GTK", "QT", "Cocoa", "Win32 UI"):
        assert not re.search(rf"^\s*{backend}[^:\n]*:\s*YES", info, re.MULTILINE), backend
