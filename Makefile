# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup setup-edge demo test broker browser i386-tools bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[train,dev]'
	touch $@

demo: setup
	$(VENV)/bin/deepsense demo

# Tests start their own Mosquitto on a free loopback port; install the Debian package if missing.
broker:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; \
	else echo "mosquitto not found: sudo apt-get install mosquitto (broker tests will be skipped)"; fi

# The dashboard's browser test drives Debian's Chromium through Playwright (installed by
# setup, from the dev extra); Playwright's own browser download is not used.
browser:
	@if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq chromium >/dev/null; \
	else echo "chromium not found: sudo apt-get install chromium (browser tests will be skipped)"; fi

# tests/export/test_i386.py builds an i386 Debian userland with debootstrap (root, once; cached
# in /var/cache/deepsense-i386): install debootstrap if missing.
i386-tools:
	@if command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ]; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq debootstrap >/dev/null; \
	else echo "debootstrap not found: sudo apt-get install debootstrap (the i386 test will be skipped)"; fi

test: setup broker browser i386-tools
	$(PY) -m pytest --run-slow $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) demo-output build *.egg-info
