# The two commands of the README: `make demo` (set-up + the demo run) and `make test`.
VENV ?= .venv
export OCCI_VENV := $(VENV)

.PHONY: setup demo test system vllm-venv site bench-corpora clean

setup: $(VENV)/.installed

# without .venv-vllm: `make demo` needs none, and `make test` makes it in the background (vllm-venv)
$(VENV)/.installed: pyproject.toml scripts/install.sh
	OCCI_VLLM=0 bash scripts/install.sh --test
	touch $@

demo: setup
	$(VENV)/bin/occi run demo

# system packages first: building llama-cpp-python during setup needs cmake and g++; then
# .venv-vllm starts in the background (3-5 min of downloads, hidden behind the set-up and the first
# tests: tests/conftest.py holds its tests back until it is made, and fails them if pip failed).
# Two workers, a test file each (--dist loadfile keeps a file's module fixtures in one process),
# the longest files first (tests/longest_first.py): most tests wait on subprocesses (torchrun
# ranks, SLURM jobs), so the two cores stay busy
test: system vllm-venv setup
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=40

vllm-venv:
	bash scripts/install-vllm.sh --background

system:
	bash scripts/install-system.sh

# the documentation site (docs/ + the references generated from the code) -> site/
site: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf runs site .pytest_cache
