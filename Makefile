# Two entry points, each self-contained on a fresh machine:
#   make demo   create .venv, install, run the main job on the embedded default body model (Anny)
#   make test   create .venv, install (with [dev]), run the test suite
# CPU boxes get torch==2.13.0 (CPU wheel). GPU users: see README ("GPU install").
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# BlazePose ships in mediapipe 0.10.14-0.10.21 only; --no-deps keeps jax / opencv-contrib / sounddevice out ([detect]).
MEDIAPIPE_SPEC ?= mediapipe==0.10.21
# Anny's one-off model build (~2 min, ~0.8 GB) and warp's kernel cache live in a folder the project controls.
export ANNY_CACHE_DIR ?= $(CURDIR)/.cache/anny
export WARP_CACHE_PATH ?= $(CURDIR)/.cache/warp

BIN := $(VENV)/bin

.PHONY: setup demo test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	@ldconfig -p 2>/dev/null | grep -q libusb-1.0 || { apt-get update -qq && apt-get install -y -qq libusb-1.0-0; } || echo "warning: open3d needs libusb-1.0-0: apt-get install libusb-1.0-0"
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,detect,sfm]"
	$(BIN)/python -m pip install -q --no-deps "$(MEDIAPIPE_SPEC)"
	touch $@

setup: $(BIN)/.installed

demo: setup
	$(BIN)/human3d demo --out outputs/demo

test: setup
	$(BIN)/python -m pytest -q tests

bench: setup
	for f in tools/bench/*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache outputs
