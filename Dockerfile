# syntax=docker/dockerfile:1
# Waymark's image: one image, three commands (scripts/entrypoint.sh): api, scheduler, migrate.
# Build: docker build -t waymark . ; run: deploy/compose.yaml. tests/test_image.py runs the
# entrypoint and its commands exactly as this image does (CI cannot pull base images).

ARG PYTHON_IMAGE=python:3.12-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
# The uv the Makefile pins; the lock file decides every other version.
RUN pip install --no-cache-dir "uv==0.13.9"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Dependencies first (a layer that survives code changes), then the code; no dev tools.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python3
COPY . .
RUN uv sync --frozen --no-dev --python /usr/local/bin/python3

FROM ${PYTHON_IMAGE} AS runtime
RUN groupadd --system --gid 10001 waymark \
 && useradd --system --uid 10001 --gid waymark --home-dir /app --no-create-home waymark \
 && mkdir -p /var/lib/waymark \
 && chown waymark:waymark /var/lib/waymark \
 && chmod 0700 /var/lib/waymark
WORKDIR /app
COPY --from=build /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    WAYMARK_INSTANCE_DIR=/var/lib/waymark \
    BIND=0.0.0.0:8000 \
    FORWARDED_ALLOW_IPS=*
USER waymark:waymark
EXPOSE 8000 9100
# Liveness of the API; the scheduler's service overrides it (compose.yaml) with its own port.
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "scripts/healthcheck.py", "http://127.0.0.1:8000/healthz"]
ENTRYPOINT ["scripts/entrypoint.sh"]
CMD ["api"]
