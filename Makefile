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

.PHONY: run test lint typecheck pytest bench schema clean

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

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
ifeq ($(SEALED),yes)
	unshare --net -- sh -c 'ip link set lo up && exec $(BIN)/python -m pytest $(PYTEST_ARGS)'
else
	$(BIN)/python -m pytest $(PYTEST_ARGS)
endif

test: lint typecheck pytest

schema: $(STAMP)
	$(BIN)/python -m signaling.schema > docs/protocol.schema.json

bench: $(STAMP)
	$(BIN)/python -m loadtest.forwarding --subscribers 10 --subscribers 25

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
