"""What a running application holds: its settings and the services built from them.

Built once by the application's lifespan (``app.py``) and reached as
``request.app.state.services``; the CLI builds what it needs itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from starlette.requests import Request

from dialbase.compat.auth import FamilyAuth
from dialbase.compat.campaign_status import CampaignStatus
from dialbase.compat.deletion import Deletion
from dialbase.compat.directory import Directory
from dialbase.compat.fields import Limits
from dialbase.compat.service import AddCampaignData
from dialbase.compat.tokens import GenerateToken
from dialbase.config import Settings
from dialbase.dialer.service import Dialer
from dialbase.dnc.service import DncLists
from dialbase.imports.runner import ImportRunner
from dialbase.leads.writer import GroupCommitWriter
from dialbase.observability.gauges import ScrapeGauges
from dialbase.ratelimit import Limiter
from dialbase.webhooks.delivery import WebhookDispatcher


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    limiter: Limiter
    writer: GroupCommitWriter
    field_limits: Limits
    directory: Directory
    auth: FamilyAuth
    add_campaign_data: AddCampaignData
    generate_token: GenerateToken
    deletion: Deletion
    campaign_status: CampaignStatus
    dialer: Dialer
    dnc: DncLists
    imports: ImportRunner
    gauges: ScrapeGauges
    webhooks: WebhookDispatcher


def services_of(request: Request) -> Services:
    """The services of the application serving ``request``."""
    services: Services = request.app.state.services
    return services
