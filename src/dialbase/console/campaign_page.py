"""A campaign's page: shown by its route, and again with an upload's error next to the file."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from dialbase.console import service as reads
from dialbase.console.views import console_of, render, signed_in


async def show_campaign(
    request: Request, campaign_id: int, errors: dict[str, str] | None = None
) -> Response:
    console = console_of(request)
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
        imports = await reads.recent_imports(page.session, campaign)
    context = {
        "page": page,
        "campaign": campaign,
        "counts": await console.counts.get(campaign.id),
        "states": reads.STATES,
        "chart": await console.chart.get(campaign.id),
        "imports": imports,
        "errors": errors or {},
    }
    return render(request, "campaign.html", context)
