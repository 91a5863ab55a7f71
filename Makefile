# Quick start: `make demo` runs the demo, `make test` runs the test suite
# (`make test-fast`: the unit tests only).
# Both create .venv/ first when it is missing (tools/setup_env.sh).
PY := .venv/bin/python

.PHONY: env demo test test-fast
env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/demo.py

test: env
	$(PY) -m pytest -q tests

# unit tests only (no end-to-end tool runs): a couple of minutes
test-fast: env
	$(PY) -m pytest -q -m "not slow and not needs_registry" tests
