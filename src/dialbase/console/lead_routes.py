"""``/console/campaigns/{id}/leads``: the leads table, a lead's detail, deleting. HTTP only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from dialbase import phones
from dialbase.compat.deletion import delete_numbers
from dialbase.console import service as reads
from dialbase.console.views import PREFIX, console_of, form_of, render, signed_in
from dialbase.errors import NotFound
from dialbase.services import services_of

router = APIRouter(prefix=f"{PREFIX}/campaigns/{{campaign_id:int}}/leads", include_in_schema=False)


@router.get("")
async def leads_page(
    campaign_id: int,
    request: Request,
    q: Annotated[str, Query(max_length=reads.MAX_QUERY_CHARS)] = "",
    state: Annotated[str, Query(max_length=16)] = "",
    after: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    query = reads.LeadQuery(q, state, after)
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
        found = await reads.leads_page(page.session, page.account, campaign, query)
    context = {
        "page": page,
        "campaign": campaign,
        "query": query,
        "found": found,
        "states": reads.STATES,
        "name_window": reads.NAME_WINDOW,
    }
    return render(request, "leads.html", context)


@router.get("/{lead_id:int}")
async def lead_page(campaign_id: int, lead_id: int, request: Request) -> Response:
    now = services_of(request).dialer.clock()
    async with signed_in(request, read_only=True) as page:
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
        detail = await reads.lead_detail(page.session, page.account, campaign, lead_id, now)
    context = {"page": page, "campaign": campaign, "detail": detail}
    return render(request, "lead.html", context)


@router.post("/{lead_id:int}/delete")
async def delete_lead(campaign_id: int, lead_id: int, request: Request) -> Response:
    """Deletes the campaign's live leads of this lead's number (the deletion service's
    unit, as ``DELETE /v1/campaigns/{c}/leads`` does)."""
    async with signed_in(request) as page:
        await form_of(request, page)
        campaign = await reads.own_campaign(page.session, page.account, campaign_id)
        lead = await reads.own_lead(page.session, campaign, lead_id)
        number = lead.phone_e164 or phones.e164(lead.phone_number, page.account.default_country)
        deleted = await delete_numbers(page.session, [campaign.id], [number])
        if not deleted:
            raise NotFound(reads.NO_LEAD)
    console_of(request).changed(campaign_id)
    context = {"page": page, "campaign": campaign, "number": number, "deleted": deleted}
    return render(request, "deleted.html", context)
