# Two commands on a fresh machine:
#   make serve   set up, then run the server with the demo apps (wraft0/1/2.localhost:8000)
#   make test    set up (incl. Debian chromium), then run the whole test suite
# Both are idempotent: each set-up step is skipped when its stamp is newer than its inputs.

PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
PORT   ?= 8000
ARGS   ?=
PYTEST_ARGS ?=

.PHONY: setup setup-test serve test test-fast bench clean

$(VENV)/.stamp: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[test]'
	touch $@

node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

setup: $(VENV)/.stamp node_modules/.stamp

# Debian's chromium (never a browser download) and iproute2 for the private network namespace.
setup-test: setup
	@command -v chromium >/dev/null && command -v ip >/dev/null && command -v unshare >/dev/null || \
	  { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium iproute2 util-linux; }

serve: setup
	$(PY) -m signaling --port $(PORT) $(ARGS)

# The whole suite runs inside a private network namespace: WebRTC gets host
# candidates there, and no test traffic can leave the machine.
test: setup-test
	scripts/in-netns $(PY) -m pytest $(PYTEST_ARGS)

# Everything but the browser tests, outside the namespace.
test-fast: setup
	$(PY) -m pytest -m 'not browser' $(PYTEST_ARGS)

bench: setup-test
	scripts/in-netns $(PY) -m benchmarks $(ARGS)

clean:
	rm -rf $(VENV) node_modules .pytest_cache
