# The two commands of the README: `make demo` (set-up + the demo run) and `make test`.
VENV ?= .venv
export OCCI_VENV := $(VENV)

.PHONY: setup demo test system site bench-corpora clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh --test
	touch $@

demo: setup
	$(VENV)/bin/occi run demo

# system packages first: building llama-cpp-python during setup needs cmake and g++
# two workers, a test file each (--dist loadfile keeps a file's module fixtures in one process):
# most tests wait on subprocesses (torchrun ranks, SLURM jobs), so the two cores stay busy
test: system setup
	$(VENV)/bin/python -m pytest -q -n 2 --dist loadfile --durations=40

system:
	bash scripts/install-system.sh

# the documentation site (docs/ + the references generated from the code) -> site/
site: setup
	$(VENV)/bin/mkdocs build --strict

clean:
	rm -rf runs site .pytest_cache
