"""The Prometheus metrics (docs/operations.md lists each one) and their exposition.

One process: the metrics live in ``prometheus_client``'s default registry. Several worker
processes (``dialbase serve --workers N``): ``PROMETHEUS_MULTIPROC_DIR`` names a folder
that ``serve`` creates fresh for each start (``multiproc.multiprocess_dir``); every worker
writes its values to its own files there and ``/metrics``, whichever worker answers it, adds them up
(``MultiProcessCollector``). The variable must be set before ``prometheus_client`` is first
imported, which ``serve`` does before it starts any worker.

The hot path pays one dictionary lookup, a counter increment and a histogram observation per
request (``RequestMetrics``): label children are made once per (method, endpoint, status).
Labels are bounded: ``endpoint`` is a route template or one of a few fixed names, never a raw
path; ``method`` is one of ``METHODS`` or ``OTHER``.
"""

from __future__ import annotations

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

from dialbase.observability.multiproc import MULTIPROC_ENV

CONTENT_TYPE = CONTENT_TYPE_LATEST
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER = "OTHER"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)

REQUESTS = Counter(
    "dialbase_http_requests_total",
    "HTTP requests answered, by method, endpoint (route template) and status.",
    ["method", "endpoint", "status"],
)
LATENCY = Histogram(
    "dialbase_http_request_duration_seconds",
    "Time from a request's arrival to the end of its answer, by method and endpoint.",
    ["method", "endpoint"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "dialbase_write_batch_size",
    "Leads per group-commit write batch (AddCampaignData and the older add endpoint).",
    buckets=BATCH_SIZES,
)
BATCH_SECONDS = Histogram(
    "dialbase_write_batch_seconds",
    "Time to write and commit one group-commit batch.",
    buckets=LATENCY_BUCKETS,
)
LEASES = Counter("dialbase_leases_total", "Leads leased to dialers (one lease per lead).")
OUTCOMES = Counter("dialbase_outcomes_total", "Lease outcomes recorded, by outcome.", ["outcome"])
DATABASE_ERRORS = Counter(
    "dialbase_database_errors_total",
    "Failures to use the database (a request, write batch, lease or probe each counts once).",
)
REDIS_ERRORS = Counter(
    "dialbase_redis_errors_total",
    "Calls to Redis that failed or timed out (rate limits then count in the process).",
)
RATE_LIMITED = Counter(
    "dialbase_rate_limited_total",
    "Requests refused for a rate limit, by limit (account: an account's budget; address:"
    " failed authentications of a client address).",
    ["limit"],
)
DATABASE_UP = Gauge(
    "dialbase_database_up",
    "1 if the database answered SELECT 1 at the last scrape, else 0.",
    multiprocess_mode="mostrecent",
)
LEADS = Gauge(
    "dialbase_leads",
    "Leads by stored state per campaign, counted at most every"
    " DIALBASE_METRICS_COUNT_SECONDS (deleted leads are not counted).",
    ["account", "campaign", "state"],
    multiprocess_mode="mostrecent",
)
CAMPAIGN_RUNNING = Gauge(
    "dialbase_campaign_running",
    "1 if the campaign is started, 0 if stopped (counted with dialbase_leads).",
    ["account", "campaign"],
    multiprocess_mode="mostrecent",
)
WEBHOOK_BACKLOG = Gauge(
    "dialbase_webhook_backlog",
    "Webhook events not yet delivered (pending), counted with dialbase_leads.",
    multiprocess_mode="mostrecent",
)
WEBHOOK_EVENTS = Gauge(
    "dialbase_webhook_events",
    "Webhook events in the outbox by status (pending, delivered, failed), counted with"
    " dialbase_leads; failed ones stay until DIALBASE_WEBHOOK_KEEP_DAYS.",
    ["status"],
    multiprocess_mode="mostrecent",
)
LEADS_COUNTED_AT = Gauge(
    "dialbase_leads_counted_timestamp_seconds",
    "Unix time of the count behind dialbase_leads.",
    multiprocess_mode="mostrecent",
)


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER


class RequestMetrics:
    """Counts and times answered requests; label children cached per label values."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, endpoint: str, status: int, seconds: float) -> None:
        """One answered request (``method`` already through ``method_label``)."""
        key = (method, endpoint, status)
        children = self._children.get(key)
        if children is None:
            children = (
                REQUESTS.labels(method, endpoint, str(status)),
                LATENCY.labels(method, endpoint),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)


def exposition() -> bytes:
    """Every metric in the text format: this process's, or all workers' in multiprocess mode."""
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)
