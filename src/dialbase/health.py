"""``/healthz`` (the process answers) and ``/readyz`` (its database and Redis answer).

The Redis check takes at most ``DIALBASE_REDIS_TIMEOUT_MS``, and none at all while the
limiter's circuit is open (see ``dialbase.ratelimit``): it then reports the open circuit.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import text

from dialbase.ratelimit import RedisUnavailable
from dialbase.services import services_of

router = APIRouter(tags=["operations"])
CHECK_TIMEOUT = 2.0


class Health(BaseModel):
    status: str
    checks: dict[str, str] = {}


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    return Health(status="ok")


async def _check_database(request: Request) -> None:
    async with services_of(request).engine.connect() as conn:
        await conn.execute(text("SELECT 1"))


async def _check_redis(request: Request) -> None:
    await services_of(request).limiter.check()


def _reason(exc: Exception) -> str:
    return str(exc) if isinstance(exc, RedisUnavailable) else type(exc).__name__


@router.get("/readyz", response_model=Health, responses={503: {"model": Health}})
async def readyz(request: Request) -> JSONResponse:
    checks: dict[str, str] = {}
    probes = {"database": _check_database}
    if services_of(request).settings.redis_url:
        probes["redis"] = _check_redis
    for name, probe in probes.items():
        try:
            await asyncio.wait_for(probe(request), CHECK_TIMEOUT)
            checks[name] = "ok"
        except Exception as exc:  # any failure means "not ready", with its reason
            checks[name] = f"unavailable: {_reason(exc)}"
    ready = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ready else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)
