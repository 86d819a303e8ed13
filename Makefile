# Lightning Core: the two commands of the README are `make bench` and `make test`.
# Each creates its own virtual environment (.venv) and installs what it needs.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# With an NVIDIA driver present, the venv also gets CuPy so the benchmark runs on the GPU.
EXTRAS := dev,bench$(shell command -v nvidia-smi >/dev/null 2>&1 && echo ,cuda)

.PHONY: bench test lint kernels test-gpu bench-gpu bench-all-gpu readme-perf readme-perf-check \
	sanitize-gpu clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	@touch $@

venv: $(BIN)/.installed

bench: venv
	$(BIN)/lc bench quick

test: venv
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: venv
	$(BIN)/ruff check src tests benchmarks

# Compile every CUDA kernel file with nvcc for Hopper, so a broken kernel fails here.
kernels:
	@$(PYTHON) tools/check_kernels.py

# On the GPU machine: system python3 (CuPy, torch there), run from the source tree.
test-gpu:
	PYTHONPATH=src:tests $(PYTHON) -m pytest -q -p no:cacheprovider

bench-gpu:
	PYTHONPATH=src $(PYTHON) -m lightning_core bench quick

# The full committed run on the GPU machine (all suites, plots, cross-suite summary).
bench-all-gpu:
	PYTHONPATH=src $(PYTHON) -m lightning_core bench all --device cuda \
		--out-dir benchmarks/results/$(shell date -u +%Y-%m-%d)-h200

# The README's performance section, generated from a committed `lc bench all` run folder.
# RESULTS defaults to the last folder, by name (<date>-<machine> sorts by date), under
# RESULTS_ROOT that holds the cross-suite summary `lc bench all` writes.
RESULTS_ROOT ?= benchmarks/results
RESULTS ?= $(patsubst %/,%,$(lastword $(sort $(dir $(wildcard $(RESULTS_ROOT)/*/cross_suite_summary.json $(RESULTS_ROOT)/*/*/cross_suite_summary.json)))))

readme-perf:
	@test -n "$(RESULTS)" || { echo "readme-perf: no folder under $(RESULTS_ROOT)/ has a cross_suite_summary.json; run lc bench all --out-dir $(RESULTS_ROOT)/<date>-<machine>/ or pass RESULTS=DIR" >&2; exit 2; }
	$(PYTHON) tools/gen_readme_perf.py $(RESULTS)

readme-perf-check:
	@test -n "$(RESULTS)" || { echo "readme-perf-check: no folder under $(RESULTS_ROOT)/ has a cross_suite_summary.json" >&2; exit 2; }
	$(PYTHON) tools/gen_readme_perf.py $(RESULTS) --check

sanitize-gpu:
	PYTHONPATH=src:tests compute-sanitizer --tool memcheck --error-exitcode 1 \
		$(PYTHON) -m pytest -q -p no:cacheprovider -m "cuda and not api_errors and not frame_refs" tests
	PYTHONPATH=src:tests compute-sanitizer --tool racecheck --error-exitcode 1 \
		$(PYTHON) -m pytest -q -p no:cacheprovider -m "cuda and not api_errors and not frame_refs" tests

clean:
	rm -rf $(VENV) build dist src/*.egg-info
