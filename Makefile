# Two commands matter: `make run` (serve on 127.0.0.1:8080) and `make test`.
# Each creates or updates .venv and installs what it needs.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
HOST   ?= 127.0.0.1
PORT   ?= 8080
# Tests run in a network namespace with only loopback when we are root (nothing can leave the
# machine whatever a bug does); elsewhere they run as they are, on 127.0.0.1.
SEALED := $(shell [ "$$(id -u)" = 0 ] && command -v unshare >/dev/null && echo yes)
# The browser tests drive Debian's chromium (tests/browser/); the page's modules are type-checked
# by TypeScript from web/node_modules (npm ci, from web/package-lock.json).
CHROMIUM := /usr/bin/chromium
# ...and Debian's firefox-esr, over its own WebDriver BiDi (tests/browser/firefox.py).
FIREFOX  := /usr/bin/firefox-esr
# GStreamer webrtcbin peers (tests/gstreamer/) run in the system python3 with `gi`: webrtcbin, DTLS
# and SRTP (bad), libnice, VP8 and RTP (good), videotestsrc (base), and the typelibs.
GST_PACKAGES := gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad \
	gstreamer1.0-nice python3-gst-1.0 gir1.2-gst-plugins-base-1.0 gir1.2-gst-plugins-bad-1.0
TSC      := web/node_modules/.bin/tsc
NPM_STAMP := web/node_modules/.installed

.PHONY: run test lint typecheck pytest bench schema tstypes chromium firefox gstreamer coturn clean

$(STAMP): pyproject.toml
	@[ -x $(BIN)/python ] || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(BIN)/aiosfu serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) $(NPM_STAMP)
	$(BIN)/mypy
	$(TSC) -p web

$(NPM_STAMP): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $(NPM_STAMP)

# Installed before the tests enter their network namespace (which reaches no registry).
chromium:
	@if [ ! -x $(CHROMIUM) ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

firefox:
	@if [ ! -x $(FIREFOX) ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq firefox-esr; \
	fi

gstreamer:
	@missing=""; for p in $(GST_PACKAGES); do \
		[ "$$(dpkg-query -W -f='$${db:Status-Status}' $$p 2>/dev/null)" = installed ] \
			|| missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

# coturn for the TURN tests (tests/turnserver.py starts its own on 127.0.0.1; Debian's package
# leaves its system service disabled), iptables for the 1:1 NAT test (tests/sfu/test_nat.py),
# openssl for the README's certificate command (tests/sfu/test_tls.py).
coturn:
	@missing=""; command -v turnserver >/dev/null || missing="coturn"; \
	command -v iptables >/dev/null || [ -x /usr/sbin/iptables ] || missing="$$missing iptables"; \
	command -v openssl >/dev/null || missing="$$missing openssl"; \
	if [ -n "$$missing" ] && [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi

pytest: $(STAMP) chromium firefox gstreamer coturn
ifeq ($(SEALED),yes)
	unshare --net -- sh -c 'ip link set lo up && exec $(BIN)/python -m pytest $(PYTEST_ARGS)'
else
	$(BIN)/python -m pytest $(PYTEST_ARGS)
endif

test: lint typecheck pytest

schema: $(STAMP)
	$(BIN)/python -m signaling.schema > docs/protocol.schema.json

tstypes: $(STAMP)
	$(BIN)/python -m signaling.tstypes > web/protocol.d.ts

# Side by side with Janus VideoRoom (Debian's package, installed here when missing and root; on a
# host running systemd the package also enables its own system service, which the benchmark
# never uses). Needs root: it runs in a network namespace of its own. BENCH_ARGS: see --help.
# The same scenario with simulcast input (subscribers on l, m, h in turn), then layer switches.
bench: $(STAMP)
	@if ! command -v janus >/dev/null && [ "$$(id -u)" = 0 ]; then \
		apt-cache show janus >/dev/null 2>&1 || apt-get update; \
		DEBIAN_FRONTEND=noninteractive apt-get install -y janus; \
	fi
	$(BIN)/python -m loadtest.sidebyside $(BENCH_ARGS)
	$(BIN)/python -m loadtest.sidebyside --simulcast $(BENCH_ARGS)
	$(BIN)/python -m loadtest.switching

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache web/node_modules
