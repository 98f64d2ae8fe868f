"""Builds the ASGI application.

``create_app`` returns a ``Dialbase``: dialbase's own middleware (``MIDDLEWARE``) around
a dispatcher that hands ``POST /ca_apis/AddCampaignData`` (the hot path, a bare ASGI
endpoint) to ``compat.routes``, the older add endpoint (also bare ASGI, any method) to
``compat.legacy_routes``, and everything else to the FastAPI application. A
middleware added to ``MIDDLEWARE`` sees every request, the hot path's included; one added
with ``api.add_middleware`` would see every request but the hot path's. The outermost,
``observability.middleware``, gives each request its id, counts and times it.
"""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from starlette.datastructures import State
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from dialbase import __version__, responses
from dialbase.compat import (
    bulk_routes,
    campaign_status_routes,
    deletion_routes,
    fields,
    legacy_routes,
    token_routes,
)
from dialbase.compat import routes as compat
from dialbase.compat.auth import FamilyAuth
from dialbase.compat.campaign_status import CampaignStatus
from dialbase.compat.deletion import Deletion
from dialbase.compat.directory import Directory
from dialbase.compat.schemas import add_to_openapi
from dialbase.compat.service import AddCampaignData
from dialbase.compat.tokens import GenerateToken, Tokens
from dialbase.config import Settings
from dialbase.console import routes as console
from dialbase.db import backend_name, create_engine, make_sessionmaker
from dialbase.dialer import routes as dialer
from dialbase.dialer.service import Dialer
from dialbase.dialer.stores.postgres import PostgresQueueStore
from dialbase.dialer.stores.sqlite import SQLiteQueueStore
from dialbase.dnc import routes as dnc
from dialbase.dnc.service import DncLists
from dialbase.docs_ui import install_docs
from dialbase.health import router as health_router
from dialbase.idempotency import middleware as idempotency
from dialbase.imports import routes as imports
from dialbase.imports import upload_routes
from dialbase.imports.runner import ImportRunner
from dialbase.leads.writer import GroupCommitWriter, make_store
from dialbase.migrate import upgrade
from dialbase.observability import routes as metrics_routes
from dialbase.observability.gauges import ScrapeGauges
from dialbase.observability.middleware import observe
from dialbase.ratelimit import Limiter
from dialbase.services import Services
from dialbase.sqlite_writer import SQLiteWriter
from dialbase.webhooks import routes as webhooks
from dialbase.webhooks.delivery import WebhookDispatcher

log = logging.getLogger("dialbase")

Middleware = Callable[[ASGIApp], ASGIApp]
MIDDLEWARE: Sequence[Middleware] = (observe, idempotency)  # outermost first


class Dialbase:
    """The ASGI application: the hot path and the FastAPI app behind one middleware stack."""

    def __init__(
        self,
        api: FastAPI,
        fast_path: compat.AddCampaignDataEndpoint,
        legacy: legacy_routes.LegacyEndpoint,
        middleware: Sequence[Middleware] = MIDDLEWARE,
    ) -> None:
        self.api = api
        self.fast_path = fast_path
        self.legacy = legacy
        stack: ASGIApp = self._dispatch
        for wrap in reversed(middleware):
            stack = wrap(stack)
        self._stack = stack

    @property
    def state(self) -> State:
        return self.api.state

    @property
    def services(self) -> Services:
        services: Services = self.api.state.services
        return services

    def lifespan(self) -> contextlib.AbstractAsyncContextManager[Any]:
        """Start and stop the services (what the server's lifespan events do)."""
        return self.api.router.lifespan_context(self.api)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._stack(scope, receive, send)

    async def _dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == compat.PATH and scope["method"] == "POST":
            await self.fast_path(scope, receive, send)
        elif scope["type"] == "http" and legacy_routes.matches(scope["path"]):
            await self.legacy(scope, receive, send)
        else:
            await self.api(scope, receive, send)


def _lifespan(
    settings: Settings,
    migrate: bool,
    fast_path: compat.AddCampaignDataEndpoint,
    legacy: legacy_routes.LegacyEndpoint,
) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(settings)
        if migrate:
            await upgrade(engine)
        sessionmaker = make_sessionmaker(engine)
        sqlite = SQLiteWriter(settings) if backend_name(settings.database_url) == "sqlite" else None
        writer = GroupCommitWriter(make_store(settings, sqlite), settings.write_batch_max)
        queue = SQLiteQueueStore(sqlite) if sqlite is not None else PostgresQueueStore(settings)
        directory = Directory(sessionmaker)
        dnc = DncLists(sessionmaker, sqlite)
        limiter = Limiter(
            settings.redis_url,
            settings.redis_prefix,
            settings.ip_rate_limit,
            timeout_ms=settings.redis_timeout_ms,
        )
        auth = FamilyAuth(directory, limiter, Tokens(sessionmaker, settings.token_secret))
        dialer = Dialer(directory, queue)
        runner = ImportRunner(sessionmaker, settings, sqlite)
        dispatcher = WebhookDispatcher(sessionmaker, settings)
        services = Services(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            limiter=limiter,
            writer=writer,
            field_limits=fields.Limits(
                settings.max_extra_columns,
                settings.max_extra_key_chars,
                settings.max_extra_value_chars,
            ),
            directory=directory,
            auth=auth,
            add_campaign_data=AddCampaignData(auth, writer, dnc),
            generate_token=GenerateToken(auth, sessionmaker),
            deletion=Deletion(auth, sessionmaker),
            campaign_status=CampaignStatus(auth, sessionmaker, lambda: dialer.clock()),
            dialer=dialer,
            dnc=dnc,
            imports=runner,
            gauges=ScrapeGauges(engine, sessionmaker, settings.metrics_count_seconds),
            webhooks=dispatcher,
        )
        app.state.services = fast_path.services = legacy.services = services
        # What exists now lives as long as the process: keep it out of the collector's
        # full passes, which otherwise add their pause to the slowest requests.
        gc.freeze()
        runner.start()
        dispatcher.start()
        try:
            yield
        finally:
            await dispatcher.close()
            await runner.close()
            await services.gauges.close()
            await writer.close()
            await queue.close()
            if sqlite is not None:
                await sqlite.close()
            await engine.dispose()

    return lifespan


def create_app(settings: Settings | None = None, *, migrate: bool = True) -> Dialbase:
    """The application; ``dialbase serve`` runs it with uvicorn (``factory=True``)."""
    settings = settings or Settings()
    fast_path = compat.AddCampaignDataEndpoint()
    legacy = legacy_routes.LegacyEndpoint()
    api = FastAPI(
        title="dialbase",
        version=__version__,
        description="Lead store for outbound dialer campaigns.",
        lifespan=_lifespan(settings, migrate, fast_path, legacy),
        docs_url=None,
        redoc_url=None,
    )
    install_docs(api)
    # Reached only through the router (e.g. a method other than POST gets 405).
    api.router.routes.append(Route(compat.PATH, fast_path, methods=["POST"]))
    api.include_router(health_router)
    api.include_router(metrics_routes.router)
    api.include_router(dialer.router)
    api.include_router(dnc.router)
    api.include_router(token_routes.router)
    api.include_router(deletion_routes.router)
    api.include_router(campaign_status_routes.router)
    api.include_router(bulk_routes.router)
    api.include_router(imports.router)
    api.include_router(upload_routes.router)
    api.include_router(webhooks.router)
    console.install(api)
    responses.install(api)

    def openapi() -> dict[str, Any]:
        if api.openapi_schema is None:
            schema = get_openapi(
                title=api.title, version=api.version, routes=api.routes, description=api.description
            )
            schema["paths"].update(legacy_routes.OPENAPI_PATHS)
            api.openapi_schema = add_to_openapi(schema)
        return api.openapi_schema

    api.openapi = openapi  # type: ignore[method-assign]
    return Dialbase(api, fast_path, legacy)
