# One entry point. `make demo` and `make test` work on a fresh machine: they create .venv and
# install the pinned stack (constraints.txt) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
TESTENV := BANDSCOPE_OFFLINE=1 BANDSCOPE_CACHE_DIR=$(CURDIR)/build/test-cache \
	BANDSCOPE_DATA_DIR=$(CURDIR)/build/test-data MPLBACKEND=Agg

.PHONY: setup system-deps demo report test lint bench clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e ".[dev]"
	$(BIN)/python tools/warm_numba.py
	touch $(STAMP)

setup: $(STAMP)

# museval (the BSS Eval reference the metric tests compare against) needs an ffmpeg binary; the
# JupyterLab browser test needs Debian's chromium at /usr/bin/chromium; synthetic multitracks
# (bn.datasets) are rendered with fluidsynth and the FluidR3 General MIDI SoundFont.
system-deps:
	@missing=""; \
	command -v ffmpeg >/dev/null 2>&1 || missing="$$missing ffmpeg"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	command -v fluidsynth >/dev/null 2>&1 || missing="$$missing fluidsynth"; \
	[ -f /usr/share/sounds/sf2/FluidR3_GM.sf2 ] || missing="$$missing fluid-soundfont-gm"; \
	[ -z "$$missing" ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -qq $$missing >/dev/null; \
		else echo "make test needs:$$missing (apt-get install$$missing)"; exit 1; fi; }

# Separate the bundled demo song (htdemucs if its weights are available, else the classical
# separator, printed) and write stems + summary under build/demo.
demo: setup
	$(BIN)/bandscope demo -o build/demo

# Run notebooks/03_report.ipynb for INPUT (default: the demo song, with its true stems) and write
# it as HTML under build/report/. Optional: MODEL, DEVICE, REFERENCES (folder of true stems).
INPUT ?=
MODEL ?= auto
DEVICE ?= auto
report: setup
	$(BIN)/bandscope report $(INPUT) --model "$(MODEL)" --device "$(DEVICE)" \
		-o build/report/$(if $(INPUT),$(basename $(notdir $(INPUT))),demo).html \
		$(if $(REFERENCES),--references "$(REFERENCES)")

# Lint, check the import contracts (the layers in pyproject.toml), then every test, docstring
# example and notebook (nbval), offline, with a private cache under build/.
test: setup system-deps
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache
	$(TESTENV) $(BIN)/python -m pytest --durations=15 --doctest-modules bandscope_nb tests
	$(TESTENV) $(BIN)/python -m pytest --nbval-lax --nbval-current-env notebooks

bench: setup
	$(BIN)/python benchmarks/bench_engine.py --write docs/benchmarks.md
	$(BIN)/python benchmarks/bench_engine.py --silence-only --write docs/benchmarks.md
	$(BIN)/python benchmarks/bench_batch.py --write docs/benchmarks.md
	$(BIN)/python benchmarks/bench_display.py --write docs/benchmarks.md
	$(BIN)/python benchmarks/bench_metrics.py --write docs/benchmarks.md
	$(BIN)/python benchmarks/bench_cli_memory.py --write docs/benchmarks.md
	$(BIN)/python benchmarks/bench_compare.py --write docs/benchmarks.md

clean:
	rm -rf build $(VENV)
