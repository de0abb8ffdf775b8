# Two commands on a fresh machine:
#   make serve   set up, then run the server with the demo apps (wraft0/1/2.localhost:8000)
#   make test    set up (incl. Debian chromium, firefox-esr, caddy, nginx, coturn), then run the whole test suite
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

# Debian's browsers (never a browser download), iproute2 for the private network
# namespace, and the hosting kit's servers (tests/deploy, tests/browser/test_deploy_*):
# caddy, nginx, coturn, certutil (libnss3-tools), openssl. (Debian may start nginx and
# coturn as services on install; the tests only run the binaries, with their own
# configs, inside the namespace.)
TEST_TOOLS    := chromium firefox-esr ip unshare nsenter caddy nginx turnserver certutil openssl
TEST_PACKAGES := chromium firefox-esr iproute2 util-linux caddy nginx coturn libnss3-tools openssl
setup-test: setup
	@missing=$$(for t in $(TEST_TOOLS); do command -v $$t >/dev/null || [ -x /usr/sbin/$$t ] || echo $$t; done); \
	[ -z "$$missing" ] || { echo "setup-test: installing Debian packages for: $$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $(TEST_PACKAGES); }

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
