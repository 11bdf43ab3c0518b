# The two commands of the README: `make run` brings the whole service up with a simulated
# creek; `make test` passes the tests. Both install what is missing first.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
DEBS := mosquitto mosquitto-clients influxdb chromium chromium-driver fonts-wqy-microhei openssl

.PHONY: run test setup system-deps venv bench clean docs

run: setup
	$(VENV)/bin/rivermon up

test: setup
	$(PY) -m pytest -q

setup: system-deps venv

# Debian packages: the broker, the database and the browser for the browser tests.
system-deps:
	@missing=""; for p in $(DEBS); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $@

docs: venv
	$(VENV)/bin/rivermon config --markdown > docs/configuration.md

bench: setup
	$(VENV)/bin/rivermon bench ingest

clean:
	rm -rf $(VENV) var .pytest_cache
