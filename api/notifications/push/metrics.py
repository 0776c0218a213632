"""Per-provider push metrics, in the process's Prometheus registry (the one /metrics serves; in
the scheduler process set PROMETHEUS_MULTIPROC_DIR to the API's directory to see them there)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

SENT = Counter("waymark_push_sent_total", "Pushes a provider accepted", ["provider"])
FAILED = Counter(
    "waymark_push_failed_total",
    "Pushes not delivered: retry (transient), failed, lost (claim taken over), deferred (paused)",
    ["provider", "outcome"],
)
DISABLED = Counter(
    "waymark_push_disabled_tokens_total",
    "Device tokens or subscriptions a provider declared dead (the device is disabled)",
    ["provider"],
)
LATENCY = Histogram(
    "waymark_push_request_duration_seconds",
    "Time from the start of a push request to the provider's answer",
    ["provider"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


def record(provider: str, outcome: str, seconds: float | None) -> None:
    if seconds is not None:
        LATENCY.labels(provider).observe(seconds)
    if outcome == "sent":
        SENT.labels(provider).inc()
    elif outcome == "invalid_token":
        DISABLED.labels(provider).inc()
    else:
        FAILED.labels(provider, outcome).inc()
