"""Settings, read from the environment with the ``DIALBASE_`` prefix.

Every setting has a default that works on a laptop: a SQLite file in the current folder
and in-process rate-limit counters. The README lists them all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DIALBASE_", extra="ignore")

    database_url: str = "sqlite:///./dialbase.db"
    redis_url: str | None = None
    redis_prefix: str = "dialbase"
    # Longest wait for Redis on any call; past it, counting falls back to this process.
    redis_timeout_ms: int = Field(default=200, ge=1)
    # Pool settings apply to PostgreSQL only.
    db_pool_size: int = Field(default=10, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    db_pool_timeout: float = Field(default=10.0, gt=0)
    db_connect_timeout: float = Field(default=5.0, gt=0)
    db_statement_timeout_ms: int = Field(default=10_000, ge=0)
    # Connections of the lead writer (PostgreSQL): batches written at once, per process.
    db_writer_connections: int = Field(default=4, ge=1)
    # "normal" survives a killed process; "full" also survives a power cut (slower).
    sqlite_synchronous: Literal["normal", "full"] = "normal"
    sqlite_busy_timeout_ms: int = Field(default=10_000, ge=0)

    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    max_extra_columns: int = Field(default=50, ge=0)
    max_extra_key_chars: int = Field(default=64, ge=1)
    max_extra_value_chars: int = Field(default=1024, ge=1)
    ip_rate_limit: int = Field(default=100, ge=1)
    write_batch_max: int = Field(default=256, ge=1)
    # Signs bearer tokens (HS512). Unset: a random secret is created on first use and kept
    # in the database, so every worker of a deployment shares it.
    token_secret: str | None = Field(default=None, min_length=32, repr=False)
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    # "text" (uvicorn's format) or "json" (one object per line); see docs/operations.md.
    log_format: Literal["text", "json"] = "text"
    # One log line per answered request (dialbase.access); `serve --access-log` sets it.
    access_log: bool = False
    # Seconds between two counts of leads by state for /metrics (per worker, single-flight).
    metrics_count_seconds: float = Field(default=30.0, ge=0)
    # HTTP server (see docs/deploy.md). X-Forwarded-For is trusted from these proxies only
    # (comma-separated addresses or networks, "*" for any); unset trusts none.
    forwarded_allow_ips: str | None = None
    # Request line and headers of one request; larger heads are answered 431.
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    # Seconds to receive a request's complete head (from the connection or the first byte).
    header_timeout: float = Field(default=10.0, gt=0)
    # Seconds to receive a request's complete body, from the end of its head.
    body_timeout: float = Field(default=30.0, gt=0)
    # Seconds an idle keep-alive connection stays open between requests.
    keep_alive_timeout: float = Field(default=5.0, gt=0)
    # Open connections per process beyond which new requests are answered 503; unset: none.
    max_connections: int | None = Field(default=None, ge=1)
    # Imports (bulk requests, files): where uploaded files wait until imported.
    import_dir: str = "./dialbase-imports"
    # Bulk requests per account per 60 s.
    bulk_rate_limit: int = Field(default=5, ge=1)
    # Largest bulk request body; larger ones are answered 413.
    max_bulk_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    # Callback URLs on private, loopback or link-local addresses (tests, closed networks).
    allow_private_callbacks: bool = False
    # Seconds an import runner holds an import between chunks; a killed worker's imports
    # are taken over by another runner once this passed.
    import_lease_seconds: float = Field(default=30.0, gt=0)
    # The service's public address (https://host): callbacks' failedFilePath starts with it.
    # Unset: the address the import's request was sent to.
    public_url: str | None = None
    # Outcome webhooks (docs/webhooks.md). A failed delivery is tried again after
    # base * 2^(attempts - 1) seconds (at most ``max``, less a random part of up to half),
    # until ``window`` seconds after the event; then it is kept as failed.
    webhook_retry_base_seconds: float = Field(default=10.0, gt=0)
    webhook_retry_max_seconds: float = Field(default=3600.0, gt=0)
    webhook_retry_window_seconds: float = Field(default=86_400.0, gt=0)
    # Longest wait for a receiver's answer; past it the attempt failed.
    webhook_timeout_seconds: float = Field(default=10.0, gt=0)
    # How long a worker holds the events it is sending; a killed worker's are taken over
    # by another once this passed.
    webhook_lease_seconds: float = Field(default=60.0, gt=0)
    # Seconds between two looks for due events when there were none.
    webhook_poll_seconds: float = Field(default=1.0, gt=0)
    # Days delivered and failed events stay listed before they are deleted.
    webhook_keep_days: float = Field(default=7.0, gt=0)
    # Minutes a web console session lasts without a request; then it must sign in again.
    console_idle_minutes: int = Field(default=30, ge=1, le=7 * 24 * 60)

    @field_validator("sqlite_synchronous", "log_level", "log_format", mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value
