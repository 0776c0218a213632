# Everything goes through uv and the lock file (uv.lock); uv itself is pinned and installed into
# .tools/ on first use, so a fresh machine needs only python3 >= 3.11 and make.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-pg lint typecheck format migrate jobs bench install install-prod clean

$(UV):
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

# Two states of one .venv: with the dev tools (tests, lint) or without them (run, migrate, jobs),
# the same set the container image installs. uv sync is exact, so switching removes what the other
# state added; each switch takes a few seconds from uv's cache.
.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python python3
	rm -f .venv/.synced-prod
	touch $@

.venv/.synced-prod: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --no-dev --python python3
	rm -f .venv/.synced
	touch $@

install: .venv/.synced

install-prod: .venv/.synced-prod

run: install-prod
	scripts/run-dev.sh

# The dashboard's browser tests and the TypeScript client check need axe-core, openapi-typescript,
# typescript and openapi-fetch from npm (package-lock.json). Without npm on the machine those tests
# skip (CI requires them: WAYMARK_REQUIRE_BROWSER=1).
node_modules/.installed: package-lock.json
	@if command -v npm >/dev/null; then \
		npm ci --no-audit --no-fund --loglevel=error && touch $@; \
	else \
		echo "npm not found: the browser and TypeScript-client tests will be skipped"; \
	fi

test: install node_modules/.installed
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-pg: install node_modules/.installed
	TEST_DATABASE_URL=$(PG_TEST_URL) $(UV) run --frozen pytest $(PYTEST_ARGS)

lint: install
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy

typecheck: install
	$(UV) run --frozen mypy

format: install
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

migrate: install-prod
	.venv/bin/alembic upgrade head

jobs: install-prod
	.venv/bin/python -m jobs

# `make bench` runs every benchmark; `make bench BENCH=export` one (see python -m bench --help).
bench: install
	$(UV) run --frozen python -m bench $(BENCH)

clean:
	rm -rf .venv .tools
