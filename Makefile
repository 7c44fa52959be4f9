# Set-up, run, test, benchmark. Every target installs what it needs first (once: a stamp
# file records the installed lock and setup.py; a second `make run` reinstalls nothing).

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# The edge runtime's own venv (ai-edge-litert, no TensorFlow): tests run edge models there,
# as an app on a device would.
EDGE_VENV := .venv-edge
EDGE_STAMP := $(EDGE_VENV)/.installed
# The web gate's browser run (serving/web/): the npm packages of package-lock.json, and Chromium.
NODE_STAMP := node_modules/.installed
ROOT ?= runs/default
ARGS ?=

# Python 3.10: pyenv's if present, else one that uv installs.
PYTHON310 ?= $(shell ls -d $$(pyenv root 2>/dev/null)/versions/3.10.*/bin/python 2>/dev/null | tail -n 1)

export TF_USE_LEGACY_KERAS := 1
export TF_CPP_MIN_LOG_LEVEL := 2

IMAGE ?= taxi-pipeline:dev

.PHONY: setup browser run test unit e2e bench bench-scale lint format lock clean image

setup: $(STAMP) $(EDGE_STAMP) $(NODE_STAMP) browser

$(VENV)/bin/python:
	@set -e; py="$(PYTHON310)"; \
	if [ -z "$$py" ]; then \
	  command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet --user uv; \
	  uv="$$(command -v uv || echo $$HOME/.local/bin/uv)"; \
	  "$$uv" python install 3.10; py="$$("$$uv" python find 3.10)"; \
	fi; \
	echo "creating $(VENV) with $$py"; \
	"$$py" -m venv $(VENV)

# pip stays in the venv: TFX pip-installs packaged user modules inside Transform and Trainer.
# --compile-bytecode: with PYTHONDONTWRITEBYTECODE set (as on our machines) every import would
# otherwise compile TF and TFX from source, every run (benchmarks/README.md: what makes it fast).
# requirements-web.lock: the TensorFlow.js converter without its unused dependencies (docs/web.md).
$(STAMP): $(VENV)/bin/python requirements.lock requirements-web.lock setup.py pyproject.toml
	$(PY) -m pip install --quiet --disable-pip-version-check uv
	$(VENV)/bin/uv pip install --compile-bytecode --python $(PY) -r requirements.lock
	$(VENV)/bin/uv pip install --compile-bytecode --python $(PY) --no-deps -r requirements-web.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

$(EDGE_STAMP): $(STAMP) requirements-edge.lock
	$(PY) -m venv --clear $(EDGE_VENV)
	$(VENV)/bin/uv pip install --python $(EDGE_VENV)/bin/python -r requirements-edge.lock
	@touch $(EDGE_STAMP)

# Without npm or Chromium, setup says so and goes on: the web gate then skips.
$(NODE_STAMP): package.json package-lock.json
	@if command -v npm >/dev/null 2>&1; then \
	  npm ci --no-audit --no-fund && touch $(NODE_STAMP); \
	else \
	  echo "WARNING: npm not found: the web gate (TensorFlow.js in Chromium) will be SKIPPED; install Node.js 18+ with npm, then make setup" >&2; \
	fi

browser:
	@command -v "$${CHROMIUM:-chromium}" >/dev/null 2>&1 || { \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } || \
	      echo "WARNING: apt-get could not install chromium: the web gate will be SKIPPED" >&2; \
	  else \
	    echo "WARNING: chromium not found and not installable here (needs apt-get as root): the web gate will be SKIPPED" >&2; \
	  fi; }

run: setup
	$(PY) -m pipeline run --root $(ROOT) $(ARGS)

test: setup
	$(PY) -m pytest -v

unit: setup
	$(PY) -m pytest -v -m "not e2e"

e2e: setup
	$(PY) -m pytest -v -m e2e

bench: setup
	$(PY) benchmarks/bench_pipeline.py $(ARGS)

# 10x and 100x the sample, ours vs TFX's taxi example (tens of minutes; data under runs/bench-scale).
bench-scale: setup
	$(PY) benchmarks/bench_scale.py $(ARGS)

# The Kubeflow image. Needs a Docker engine: none runs on this project's machines, so this
# target is for a workstation or CI runner that has one.
image:
	@docker info >/dev/null 2>&1 || { echo "make image: no Docker engine reachable here (docker info fails); build kubeflow/Dockerfile where one runs (docs/kubeflow.md)" >&2; exit 1; }
	docker build -f kubeflow/Dockerfile -t $(IMAGE) .

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# Re-resolve the pinned stack (needs the package index).
lock: $(VENV)/bin/python
	$(PY) -m pip install --quiet uv
	$(VENV)/bin/uv pip compile requirements.in -o requirements.lock \
	  --python-version 3.10 --python-platform x86_64-unknown-linux-gnu
	$(VENV)/bin/uv pip compile requirements-edge.in -o requirements-edge.lock \
	  --python-version 3.10 --python-platform x86_64-unknown-linux-gnu
	cd kubeflow && ../$(VENV)/bin/uv pip compile requirements-gpu.in -o requirements-gpu.lock \
	  --python-version 3.10 --python-platform x86_64-unknown-linux-gnu

clean:
	rm -rf $(VENV) $(EDGE_VENV) node_modules runs *.egg-info
