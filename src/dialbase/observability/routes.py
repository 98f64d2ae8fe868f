"""``GET /metrics``: the Prometheus text format (docs/operations.md lists the metrics)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from dialbase.observability import metrics
from dialbase.services import services_of

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {metrics.CONTENT_TYPE: {}}, "description": "Prometheus text."}},
)
async def scrape(request: Request) -> Response:
    """Every metric, all worker processes' added up."""
    await services_of(request).gauges.update()
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)
