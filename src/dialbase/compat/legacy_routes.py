"""The older add endpoint, a bare ASGI endpoint like AddCampaignData's (being written)."""

from __future__ import annotations

from typing import Any

from starlette.types import Receive, Scope, Send

from dialbase.services import Services

PREFIX = "/cloudAgentRestAPI/index.php/CloudAgent/CloudAgentAPI/addCamapaignData"
OPENAPI_PATHS: dict[str, Any] = {}


def matches(path: str) -> bool:
    """Whether ``path`` is the older endpoint's (with path segments or ``.json``)."""
    return path == PREFIX or path.startswith((PREFIX + "/", PREFIX + "."))


class LegacyEndpoint:
    """The ASGI endpoint; its services are set by the application's lifespan."""

    services: Services

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 404, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"detail": "not yet"}'})
