# The two commands a new user needs: `make run` and `make test`. Both set everything up.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup run test lint bench package teams-app screenshots clean

setup: $(STAMP) node_modules/.package-lock.json

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error

## Run the app locally: Azurite, the functions on the dev host, the local chat channel.
run: setup
	$(PY) -m devhost.run

## Run the whole test suite: TEST_WORKERS processes (pytest-xdist), each with its own Azurite on free ports.
## More workers than cores: many tests wait on queues, stubs and rate limits, not on the CPU; but each worker
## also collects the suite and runs an Azurite: on 2 cores, 3 workers ran the suite in 199 s where 4 took 215 s.
## The few that assert spacing in real time (marked `timing`) run afterwards, alone: a CPU shared by several
## workers can delay a request past the margin they check.
TEST_WORKERS ?= 3
# pytest keeps its rewritten test modules in __pycache__ only where bytecode may be written: a second run (and the
# timing phase after the first) then skips rewriting about 2,000 asserts, some 4 CPU-seconds per process.
test: export PYTHONDONTWRITEBYTECODE :=
test: setup
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadgroup -m "not timing" $(PYTEST_ARGS)
	$(PY) -m pytest -m timing $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

## The README's pictures of the authors' page (docs/screenshots/), taken in Debian's Chromium from the app as it is.
screenshots: setup
	$(PY) -m devhost.azurite -- $(PY) -m tests.portal.screenshots

## Benchmarks (not tests): prints ratios measured in one run, writes bench/RESULTS.md.
bench: setup
	$(PY) -m devhost.azurite -- $(PY) -m bench

## The deployment zip (dist/functionapp.zip): app + the locked Linux x86_64 CPython 3.13 wheels (requirements.lock).
package: setup
	$(PY) -m deploy.build

## The Teams app package (dist/teams-app.zip): manifest.json (bot id = MicrosoftAppId from the environment or
## local.settings.json) and its two icons; upload it to the org catalog. Options: `$(PY) -m deploy.teams_app --help`.
teams-app: setup
	$(PY) -m deploy.teams_app

clean:
	rm -rf $(VENV) node_modules .pytest_cache dist
