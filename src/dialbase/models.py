"""Imports every table so that the metadata is complete (Alembic, tests)."""

from dialbase.accounts.models import Account, ConfigRevision
from dialbase.campaigns.models import Campaign
from dialbase.console.models import ConsoleSession
from dialbase.dialer.models import Lease
from dialbase.dnc.models import DncEntry
from dialbase.idempotency_models import IdempotencyKey
from dialbase.imports.models import Import, ImportResult, ImportRow
from dialbase.leads.models import CampaignNumber, CampaignZones, Lead, WriteBatch
from dialbase.webhooks.models import Webhook, WebhookEvent

__all__ = [
    "Account",
    "Campaign",
    "CampaignNumber",
    "CampaignZones",
    "ConfigRevision",
    "ConsoleSession",
    "DncEntry",
    "IdempotencyKey",
    "Import",
    "ImportResult",
    "ImportRow",
    "Lead",
    "Lease",
    "Webhook",
    "WebhookEvent",
    "WriteBatch",
]
