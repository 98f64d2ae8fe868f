"""Imports every table so that the metadata is complete (Alembic, tests)."""

from dialbase.accounts.models import Account, ConfigRevision
from dialbase.campaigns.models import Campaign
from dialbase.dialer.models import Lease
from dialbase.leads.models import CampaignNumber, Lead, WriteBatch

__all__ = ["Account", "Campaign", "CampaignNumber", "ConfigRevision", "Lead", "Lease", "WriteBatch"]
