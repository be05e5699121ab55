# The two commands of the README: `make demo` (set-up + the demo run) and `make test`.
VENV ?= .venv
export OCCI_VENV := $(VENV)

.PHONY: setup demo test bench-corpora clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml scripts/install.sh
	bash scripts/install.sh --test
	touch $@

demo: setup
	$(VENV)/bin/occi run demo

test: setup
	bash scripts/install-system.sh
	$(VENV)/bin/python -m pytest -q

clean:
	rm -rf runs .pytest_cache
