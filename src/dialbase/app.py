"""Builds the ASGI application."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from dialbase import __version__
from dialbase.compat import fields
from dialbase.compat import routes as compat
from dialbase.compat.directory import Directory
from dialbase.compat.schemas import add_to_openapi
from dialbase.compat.service import AddCampaignData
from dialbase.config import Settings
from dialbase.db import DATABASE_ERRORS, backend_name, create_engine, make_sessionmaker
from dialbase.dialer import routes as dialer
from dialbase.docs_ui import install_docs
from dialbase.errors import DATABASE_DOWN, DialbaseError, ServiceUnavailable, handle_dialbase_error
from dialbase.health import router as health_router
from dialbase.leads.writer import GroupCommitWriter, make_store
from dialbase.migrate import upgrade
from dialbase.ratelimit import Limiter

log = logging.getLogger("dialbase")


class DialbaseApp(FastAPI):
    """FastAPI, except that the hot path skips every middleware and the router."""

    fast_path: compat.AddCampaignDataEndpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == compat.PATH and scope["method"] == "POST":
            await self.fast_path(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


async def _database_down(request: Request, exc: Exception) -> Response:
    log.error("database unavailable: %s", exc)
    return await handle_dialbase_error(request, ServiceUnavailable(DATABASE_DOWN))


def _lifespan(settings: Settings, migrate: bool) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        if migrate:
            await upgrade(engine)
        sessionmaker = make_sessionmaker(engine)
        backend = backend_name(settings.database_url)
        writer = GroupCommitWriter(make_store(settings, backend), settings.write_batch_max)
        limiter = Limiter(settings.redis_url, settings.redis_prefix, settings.ip_rate_limit)
        app.state.settings = settings
        app.state.engine = engine
        app.state.sessionmaker = sessionmaker
        app.state.limiter = limiter
        app.state.field_limits = fields.Limits(
            settings.max_extra_columns, settings.max_extra_key_chars, settings.max_extra_value_chars
        )
        app.state.add_campaign_data = AddCampaignData(Directory(sessionmaker), limiter, writer)
        try:
            yield
        finally:
            await writer.close()
            await engine.dispose()

    return lifespan


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> DialbaseApp:
    """The application; ``dialbase serve`` runs it with uvicorn (``factory=True``)."""
    settings = settings or Settings()
    app = DialbaseApp(
        title="dialbase",
        version=__version__,
        description="Lead store for outbound dialer campaigns.",
        lifespan=_lifespan(settings, migrate),
        docs_url=None,
        redoc_url=None,
    )
    install_docs(app)
    app.fast_path = compat.AddCampaignDataEndpoint(app.state)
    # Reached only through the router (e.g. a method other than POST gets 405).
    app.router.routes.append(Route(compat.PATH, app.fast_path, methods=["POST"]))
    app.include_router(health_router)
    app.include_router(dialer.router)
    app.add_exception_handler(DialbaseError, handle_dialbase_error)
    app.add_exception_handler(RequestValidationError, dialer.validation_error)
    app.add_exception_handler(HTTPException, dialer.http_error)
    for error in DATABASE_ERRORS:
        app.add_exception_handler(error, _database_down)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, routes=app.routes, description=app.description
            )
            app.openapi_schema = add_to_openapi(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
