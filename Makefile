# Two commands: `make run` starts the whole system, `make test` runs the suite.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test insightface bench soak lint clean

# insightface asks for opencv-python, whose cv2/ overwrites the headless build's: every install
# that brings insightface is followed by this step, which leaves only the headless build.
HEADLESS_OPENCV := sh deploy/headless-opencv.sh $(BIN)/python

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The tests run the opt-in insightface engine too, so the suite installs its extra.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test,insightface]'
	$(HEADLESS_OPENCV)
	touch $(STAMP)

# mirrorhub with the opt-in insightface engine (MIRRORHUB_FACE_ENGINE=insightface), no test tools.
insightface: | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[insightface]'
	$(HEADLESS_OPENCV)

run: $(STAMP)
	$(BIN)/mirrorhub up

# The suite runs in TEST_WORKERS processes (pytest-xdist), a test file to a worker: most of its
# time is waiting on sockets, so three share two cores well. TEST_WORKERS=0 runs it in one.
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python bench/bridge_hop.py
	$(BIN)/python bench/vision.py
	$(BIN)/python bench/messaging.py

# 100 simulated mirrors for 10 minutes on `mirrorhub up`: memory flat, no message lost, every
# display right (bench/soak.py; its last figures are in bench/README.md). Niced: it takes the
# machine for 10 minutes.
soak: $(STAMP)
	nice -n 10 $(BIN)/python -m bench.soak

lint: $(STAMP)
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/ruff check .
	$(BIN)/mypy broker bridge schemas services mirrorhub devices bench

clean:
	rm -rf $(VENV) data .pytest_cache
