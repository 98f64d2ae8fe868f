"""What the reference apps share: a Starlette app around their store, and their command line.

A reference app (``reference_app.py``, ``lease_reference_app.py``) defines its routes and
two stores (``SqliteStore(url)``, ``PostgresStore().open(url)`` awaited), then calls
``serve``: one uvicorn worker with uvloop and httptools, no access log.
"""

from __future__ import annotations

import argparse
from contextlib import asynccontextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route


async def healthz(_request):
    return Response(b"ok")


def make_app(url: str, routes: list[Route], sqlite_store, postgres_store) -> Starlette:
    @asynccontextmanager
    async def lifespan(app):
        is_sqlite = url.startswith("sqlite:")
        app.state.store = sqlite_store(url) if is_sqlite else await postgres_store().open(url)
        yield
        await app.state.store.close()

    return Starlette(routes=[*routes, Route("/healthz", healthz)], lifespan=lifespan)


def serve(description: str, routes: list[Route], sqlite_store, postgres_store) -> None:
    ap = argparse.ArgumentParser(description=description.splitlines()[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=8001)
    ap.add_argument("--database-url", required=True)
    args = ap.parse_args()
    uvicorn.run(
        make_app(args.database_url, routes, sqlite_store, postgres_store),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        workers=1,
        access_log=False,
        log_level="warning",
    )
