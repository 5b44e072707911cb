# Two entry points: `make demo` (a room session through the real handlers, all local) and
# `make test` (lint, types, template lint, tests). Each makes its own virtual environment.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
AGENT_VENV := .venv-agent
INFRA_VENV := .venv-infra
# The container runs Python 3.12; use it for the agent tests when this machine has it.
AGENT_PYTHON ?= $(shell python3.12 --version >/dev/null 2>&1 && echo python3.12 || echo $(PYTHON))

.PHONY: demo dev test check infra-lint unit test-agent bench bench-smoke bench-e2e e2e simulate capacity format clean openapi reliability lock

# Every install is from a lock with hashes (pip --require-hashes), pip itself included
# (requirements-pip.txt): the *.in files say what is wanted, `make lock` pins it.
# requirements-dev.txt is the project and its dev group for Python 3.11, held to the Lambda
# lock's versions where they share packages.
PIP_LOCK := requirements-pip.txt

$(BIN)/.installed: pyproject.toml requirements-dev.txt $(PIP_LOCK)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r $(PIP_LOCK)
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.txt
	$(BIN)/pip install --quiet --no-deps -e .  # the lkctl console script (its deps are in the lock)
	touch $@

# requirements-test.txt locks the image's requirements plus the test tools (`make lock`).
$(AGENT_VENV)/.installed: agent_container/requirements.txt agent_container/requirements-test.txt $(PIP_LOCK)
	$(AGENT_PYTHON) -m venv $(AGENT_VENV)
	$(AGENT_VENV)/bin/pip install --quiet --require-hashes -r $(PIP_LOCK)
	$(AGENT_VENV)/bin/pip install --quiet --require-hashes -r agent_container/requirements-test.txt
	touch $@

# checkov and aws-sam-translator pin shared packages (pydantic, boto3) differently: own venv,
# own lock (infra/requirements-infra.in → .txt, `make lock`).
$(INFRA_VENV)/.installed: infra/requirements-infra.txt $(PIP_LOCK)
	$(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/pip install --quiet --require-hashes -r $(PIP_LOCK)
	$(INFRA_VENV)/bin/pip install --quiet --require-hashes -r infra/requirements-infra.txt
	touch $@

demo: $(BIN)/.installed
	PYTHONPATH=functions:. $(BIN)/python -m local.demo

# The control plane on this machine until Ctrl-C (`lkctl dev`, README "Local stack"); options in
# ARGS, e.g. make dev ARGS="--grace 10 --livekit-url ws://localhost:7880".
dev: $(BIN)/.installed
	PYTHONPATH=functions:. $(BIN)/lkctl dev $(ARGS)

test: check infra-lint unit test-agent bench-smoke

check: $(BIN)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/cfn-lint template.yaml

infra-lint: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/checkov --file template.yaml --framework cloudformation --skip-download --compact --quiet
	$(INFRA_VENV)/bin/python -m pytest --noconftest -p no:cacheprovider -p no:warnings -q tests/infra/test_sam_transform.py

unit: $(BIN)/.installed
	$(BIN)/pytest

# Invariants under load, faults and hostile input (issue 8); `unit` runs these tests too.
# Prints scenario -> outcome -> figures and writes bench/results/reliability.json.
reliability: $(BIN)/.installed
	$(BIN)/pytest tests/reliability -p no:cacheprovider

test-agent: $(AGENT_VENV)/.installed
	$(AGENT_VENV)/bin/pytest agent_container/tests

bench: $(BIN)/.installed $(AGENT_VENV)/.installed
	$(BIN)/python bench/run.py

# Every benchmark at a size of seconds, judged only on running and writing its figures
# (bench/results/<name>.smoke.json, beside a full run's): a change that breaks one is red at once.
bench-smoke: $(BIN)/.installed
	$(BIN)/python bench/run.py --smoke

# The e2e tier (issue 19, README "End-to-end tier"): the real livekit-server (LIVEKIT_SERVER,
# livekit-server on PATH, or built once into ~/.cache/livekit-server), the local stack running
# the real agent worker, WebRTC humans; all in a private network namespace (needs root).
e2e: $(BIN)/.installed $(AGENT_VENV)/.installed
	$(BIN)/python -m local.e2e.netns -- $(BIN)/pytest tests/e2e -p no:cacheprovider -rfEs

# Join latency on the real server; JOINS=3 is the smoke size (full: 30 per row, by hand);
# ARGS="--modes warm,early" measures some rows and keeps the others.
JOINS ?= 30
bench-e2e: $(BIN)/.installed $(AGENT_VENV)/.installed
	$(BIN)/python bench/e2e_latency.py --joins $(JOINS) $(ARGS)

# Every cleanup policy over a seeded day of rooms and a launch storm (issue 9): table on stdout,
# bench/results/policies.json, and its charts in docs/charts/ (committed: the seeded reference
# run that README.md and docs/capacity.md show; this is the one command that refreshes them).
simulate: $(BIN)/.installed
	PYTHONPATH=functions $(BIN)/python -m sim --charts docs/charts

# The capacity model at 100,000 rooms (issue 20): each row of the real core on the join-API and
# webhook-only paths over a seeded day, its counts per concurrent room against every AWS and
# LiveKit limit; writes bench/results/capacity.json (committed), which docs/capacity.md quotes.
capacity: $(BIN)/.installed
	PYTHONPATH=functions $(BIN)/python -m sim.capacity --rooms 100000

# The API's OpenAPI document, committed; tests/unit/test_openapi_spec.py fails while it is stale.
openapi: $(BIN)/.installed
	PYTHONPATH=functions:. $(BIN)/python -m local.openapi docs/openapi.json

format: $(BIN)/.installed
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Re-resolves every lock to the newest versions the *.in files and pyproject.toml allow, with
# hashes, for the Python each runs on: the Lambda package (functions/requirements.txt, what
# `sam build` installs) and the agent image (agent_container/requirements.txt, the Dockerfile's)
# for 3.12 on Linux, the dev tools for 3.11 at the Lambda lock's versions. The agent tests' lock
# is universal (its venv is 3.12 where there is one, else 3.11: av 19 has no 3.11 wheels); on
# 3.12 it resolves to the image's versions. The infrastructure checks' lock and pip's are universal
# too (their venvs run on this machine's python3). LOCK_ARGS= keeps today's pins (after editing a *.in).
LOCK_ARGS ?= --upgrade
LOCK = $(BIN)/uv pip compile --quiet --generate-hashes --custom-compile-command "make lock" $(LOCK_ARGS)
lock: $(BIN)/.installed
	$(LOCK) --python-platform linux --python-version 3.12 functions/requirements.in -o functions/requirements.txt
	$(LOCK) --python-platform linux --python-version 3.11 pyproject.toml --group dev \
		-c functions/requirements.txt -o requirements-dev.txt
	$(LOCK) --python-platform linux --python-version 3.12 agent_container/requirements.in \
		-o agent_container/requirements.txt
	$(LOCK) --universal --python-version 3.11 agent_container/requirements.in agent_container/requirements-test.in \
		-o agent_container/requirements-test.txt
	$(LOCK) --universal --python-version 3.11 infra/requirements-infra.in -o infra/requirements-infra.txt
	$(LOCK) --universal --python-version 3.11 requirements-pip.in -o $(PIP_LOCK)

clean:
	rm -rf $(VENV) $(AGENT_VENV) $(INFRA_VENV) .pytest_cache .mypy_cache .ruff_cache
