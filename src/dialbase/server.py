"""Running the HTTP server: uvicorn, configured from the settings."""

from __future__ import annotations

import copy

import uvicorn
import uvicorn.config

from dialbase.config import Settings


def run(
    settings: Settings,
    *,
    host: str,
    port: int,
    workers: int,
    access_log: bool,
    forwarded_allow_ips: str | None,
) -> None:
    """Serve ``dialbase.app:create_app`` until stopped.

    X-Forwarded-For is trusted only from ``forwarded_allow_ips`` (never by default).
    """
    uvicorn.run(
        "dialbase.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level,
        log_config=log_config(settings.log_level),
        access_log=access_log,
        proxy_headers=forwarded_allow_ips is not None,
        forwarded_allow_ips=forwarded_allow_ips,
    )


def log_config(level: str) -> dict[str, object]:
    """uvicorn's logging setup, plus dialbase's own loggers at the same level."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["loggers"]["dialbase"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config
