#!/bin/sh
# Leave only opencv-python-headless's cv2/ in the environment of the Python given (DESIGN.md).
#
# insightface asks for opencv-python. The GUI builds write the very files of the headless build's
# cv2/, so the last one installed wins, and uninstalling one breaks the other: take the GUI builds
# out, then write the headless build's files again, at the version already installed.
set -eu
python=${1:?usage: headless-opencv.sh PYTHON}
gui=""
for name in opencv-python opencv-contrib-python; do
    if "$python" -m pip show --quiet "$name" >/dev/null 2>&1; then
        gui="$gui $name"
    fi
done
if [ -n "$gui" ]; then
    headless=$("$python" -c 'from importlib.metadata import version
print(version("opencv-python-headless"))')
    # shellcheck disable=SC2086 # one word per package
    "$python" -m pip uninstall --quiet --yes $gui
    "$python" -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==$headless"
fi
"$python" -c 'import cv2' # the headless build imports on a machine with no display libraries
