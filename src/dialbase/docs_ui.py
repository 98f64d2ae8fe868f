"""The interactive API docs (``/docs``), served with assets from the package (no CDN).

Swagger UI's files are vendored in ``static/swagger-ui/`` (from the ``swagger-ui-dist``
npm package, Apache-2.0; its LICENSE and NOTICE sit beside them), so the page works
offline and loads nothing from another host. To update them, copy the same files from a
newer ``swagger-ui-dist`` and change ``SWAGGER_UI_VERSION``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

SWAGGER_UI_VERSION = "5.35.0"
ASSETS = Path(__file__).parent / "static" / "swagger-ui"
ASSETS_PATH = "/docs/assets"


def install_docs(app: FastAPI) -> None:
    """Add ``/docs`` to ``app`` (created with ``docs_url=None, redoc_url=None``)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        assets = f"{root}{ASSETS_PATH}"
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon-32x32.png",
            # No badge from the public validator: the page talks to this server only.
            swagger_ui_parameters={"validatorUrl": None},
        )
