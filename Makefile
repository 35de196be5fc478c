# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PY ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: run test lint bench screenshots

$(STAMP): pyproject.toml
	test -x $(VENV)/bin/python || $(PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $(STAMP)

# The relay plus `relay sink`, the local catch-all the dev settings deliver to.
run: $(STAMP)
	$(VENV)/bin/relay sink serve --listen 127.0.0.1:2526 --maildir var/sink & sink=$$!; \
	trap 'kill $$sink 2>/dev/null' EXIT INT TERM; \
	$(VENV)/bin/relay serve --config deploy/relay.dev.toml

# The type checker first (settings in pyproject.toml's [tool.mypy]), then the suite: two
# at a time (most tests wait on sockets and child processes), then the `serial` ones
# (tests/conftest.py: they time a window) alone. Exit 5 is "nothing of that kind selected".
test: $(STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/python -m pytest -q -n 2 --dist worksteal -m "not serial" $(PYTEST_ARGS); a=$$?; \
	$(VENV)/bin/python -m pytest -q -p no:xdist -m serial $(PYTEST_ARGS); b=$$?; \
	[ $$a -eq 5 ] && a=0; [ $$b -eq 5 ] && b=0; \
	[ $$a -eq 0 ] && [ $$b -eq 0 ]

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	bench/run_relay_bench.sh

# The README's Message Center screenshots, taken by the browser test (needs chromium).
screenshots: $(STAMP)
	RELAY_WEB_SCREENSHOTS=docs/screenshots $(VENV)/bin/python -m pytest -q tests/web/test_browser.py -k sqlite
