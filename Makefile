# Everything goes through uv and the lock file (uv.lock); uv itself is pinned and installed into
# .tools/ on first use, so a fresh machine needs only python3 >= 3.11 and make.
UV_VERSION := 0.13.9
UV := .tools/bin/uv
PG_TEST_URL ?= postgresql+psycopg://postgres@127.0.0.1:5432/test

.PHONY: run test test-pg lint typecheck format migrate jobs bench install clean

$(UV):
	python3 -m venv .tools
	.tools/bin/python -m pip install --quiet "uv==$(UV_VERSION)"

.venv/.synced: $(UV) uv.lock pyproject.toml
	$(UV) sync --frozen --python python3
	touch $@

install: .venv/.synced

run: install
	scripts/run-dev.sh

test: install
	$(UV) run --frozen pytest $(PYTEST_ARGS)

test-pg: install
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

migrate: install
	$(UV) run --frozen alembic upgrade head

jobs: install
	$(UV) run --frozen python -m jobs

# `make bench` runs every benchmark; `make bench BENCH=export` one (see python -m bench --help).
bench: install
	$(UV) run --frozen python -m bench $(BENCH)

clean:
	rm -rf .venv .tools
