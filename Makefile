# Quick start: `make demo` runs the demo, `make test` runs the test suite.
# Both create .venv/ first when it is missing (tools/setup_env.sh).
PY := .venv/bin/python

.PHONY: env demo test
env:
	bash tools/setup_env.sh

demo: env
	$(PY) tools/demo.py

test: env
	$(PY) -m pytest -q tests
