"""Only the headless OpenCV build is installed, as DESIGN.md requires.

``opencv-python``, ``opencv-contrib-python`` and the headless builds all write the same ``cv2/``
package, so whichever was installed last wins; insightface's wheel pulls in the GUI build. A
GUI build on a server links display libraries it cannot use and may fail to import without them.
The Makefile follows every install of the insightface extra with ``deploy/headless-opencv.sh``.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

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


# What a fresh environment reports about itself after the install step.
_REPORT = """
import json, re
from importlib.metadata import PackageNotFoundError, distribution, requires
import cv2
import insightface.model_zoo
def installed(name):
    try:
        distribution(name)
    except PackageNotFoundError:
        return False
    return True
gui = re.search(r"^\\s*GUI:\\s*(\\S+)", cv2.getBuildInformation(), re.MULTILINE)
print(json.dumps({
    "installed": [n for n in ("opencv-python", "opencv-contrib-python",
                              "opencv-python-headless", "insightface") if installed(n)],
    "gui": gui.group(1) if gui else None,
    "insightface asks for": sorted(r for r in requires("insightface") if r.startswith("opencv")),
}))
"""


@pytest.mark.timeout(900)
@pytest.mark.slow
@pytest.mark.timeout(600)  # a minute or two here; the default 120 s is for one hung test
def test_make_insightface_leaves_only_the_headless_build(tmp_path: Path) -> None:
    """``make insightface`` in a new virtual environment, as an operator would run it.

    It takes about a minute and installs from the package registry, as ``make test`` does.
    insightface still asks for opencv-python, so pip alone would leave the GUI build's cv2/.
    """
    venv = tmp_path / "venv"
    try:
        subprocess.run(
            ["make", "--no-print-directory", "-C", str(ROOT), f"VENV={venv}",
             f"PYTHON={sys.executable}", "insightface"],
            check=True, capture_output=True, text=True, timeout=840,
        )
        report = subprocess.run(
            [str(venv / "bin" / "python"), "-W", "error", "-c", _REPORT],
            check=True, capture_output=True, text=True, timeout=60,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(f"{exc.cmd} failed:\n{exc.stdout}\n{exc.stderr}")
    finally:
        shutil.rmtree(venv, ignore_errors=True)  # several hundred MB
    assert json.loads(report.stdout) == {
        "installed": ["opencv-python-headless", "insightface"],
        "gui": "NONE",
        "insightface asks for": ["opencv-python"],
    }
