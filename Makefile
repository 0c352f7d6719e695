# Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME := build/sandbox-runtime

.PHONY: install system-deps image-test-deps run test test-ray-e2e test-deps check bench fuzz load soak clean

system-deps:
	@sh scripts/system-deps.sh

# The image tests need mmdebstrap, skopeo, umoci and docker-registry (system-deps has them).
image-test-deps: system-deps

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[server,mcp]'
	@touch $@

# The tests serve the official SDK's build contexts from a store: the `s3` extra.
$(VENV)/.test-installed: $(VENV)/.installed requirements-test.txt pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -e '.[server,mcp,s3]' -r requirements-test.txt
	@touch $@

# The `ray` extra: the tests run the ray backend on a 3-node cluster on loopback.
$(VENV)/.ray-installed: $(VENV)/.installed pyproject.toml
	$(PY) -m pip install -q --disable-pip-version-check -e '.[server,mcp,ray]'
	@touch $@

$(RUNTIME)/.installed: scripts/build-runtime.sh $(VENV)/.installed
	sh scripts/build-runtime.sh $(PY) $(RUNTIME)
	@touch $@

## install: the .venv with the `cove` command, and the sandbox runtime
install: system-deps $(VENV)/.installed $(RUNTIME)/.installed

## run: install what is missing, then serve on 127.0.0.1:3000
run: install
	$(VENV)/bin/cove serve

test-deps: install $(VENV)/.test-installed $(VENV)/.ray-installed
	@sh scripts/system-deps.sh test

## check: lint, format and types
check: test-deps
	$(VENV)/bin/ruff check src tests bench loadtest
	$(VENV)/bin/ruff format --check src tests bench loadtest
	$(VENV)/bin/mypy

# The e2e suites whose server is the shared one (`server` in tests/conftest.py) or picks
# its backend the same way (tests/serverproc.chosen_backend), run again on a 3-node Ray
# cluster on loopback (one cluster for the run): sessions, exec, files, git, PTYs, the
# interpreter, previews, lifecycle, links and SSH, each
# crossing a node's relay. Bounded: a few minutes on a loaded 2-core host.
RAY_E2E := $(addprefix tests/e2e/,test_sessions.py test_session_input.py test_files.py \
	test_pty.py test_interpreter.py test_lifecycle.py test_linked.py test_preview.py \
	test_execute_beyond_daytona.py test_reference_examples.py test_git.py \
	test_ssh.py)

## test: install and run every check and test (and the e2e selection on the ray backend)
test: check
	$(VENV)/bin/pytest
	COVE_TEST_BACKEND=ray $(VENV)/bin/pytest $(RAY_E2E)

## test-ray-e2e: only the e2e selection on the ray backend
test-ray-e2e: test-deps
	COVE_TEST_BACKEND=ray $(VENV)/bin/pytest $(RAY_E2E)

$(VENV)/.bench-installed: $(VENV)/.installed requirements-bench.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-test.txt -r requirements-bench.txt
	@touch $@

## bench: measure against same-run baselines; writes bench/REPORT.md and bench/plots/ (a few minutes)
bench: install $(VENV)/.bench-installed $(VENV)/.ray-installed
	$(PY) -m bench

## load: 100 concurrent clients for 60 s, and the noisy-neighbour factor (RELIABILITY.md)
load: test-deps
	$(PY) -m loadtest.load
	$(PY) -m loadtest.neighbours

## soak: every feature at a steady rate for SOAK_MINUTES (30); errors, memory slope, leftovers (loadtest/SOAK.md)
soak: test-deps
	$(PY) -m loadtest.soak

$(VENV)/.fuzz-installed: $(VENV)/.test-installed requirements-fuzz.txt
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-fuzz.txt
	@touch $@

## fuzz: generated requests for every route (OpenAPI, snapshots, images, dashboard, MCP, WebSockets) at a real server; fails on any 5xx (RELIABILITY.md)
fuzz: test-deps $(VENV)/.fuzz-installed
	$(PY) -m tests.security.fuzz --report build/fuzz-report.md

clean:
	rm -rf $(VENV) build
