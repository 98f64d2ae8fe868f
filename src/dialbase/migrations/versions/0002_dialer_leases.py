"""dialer: leases table and the queue indexes on leads

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 17:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

Column = str | sa.TextClause
_ORDER: list[Column] = [sa.text("priority DESC"), "due_at", "id"]
_PARTIAL: dict[str, list[Column]] = {
    "ix_leads_agent_queue": ["campaign_id", "status", "agent_id", *_ORDER],
    "ix_leads_skill_queue": ["campaign_id", "status", "skill", *_ORDER],
    "ix_leads_expiry": ["campaign_id", "status", "expires_at"],
}
_PARTIAL_COLUMN = {
    "ix_leads_agent_queue": "agent_id",
    "ix_leads_skill_queue": "skill",
    "ix_leads_expiry": "expires_at",
}


def _leads_indexes() -> None:
    op.create_index("ix_leads_queue", "leads", ["campaign_id", "status", *_ORDER])
    op.create_index("ix_leads_wake", "leads", ["campaign_id", "status", "due_at"])
    for name, columns in _PARTIAL.items():
        where = sa.text(f"{_PARTIAL_COLUMN[name]} IS NOT NULL")
        op.create_index(name, "leads", columns, sqlite_where=where, postgresql_where=where)


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("lead_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("agent_id", sa.String(length=255), nullable=True),
        sa.Column("skill", sa.String(length=255), nullable=True),
        sa.Column("leased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("note", sa.String(length=1000), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_leases_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["lead_id"], ["leads.id"], name=op.f("fk_leases_lead_id_leads"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_leases")),
    )
    op.create_index("ix_leases_campaign_outcome", "leases", ["campaign_id", "outcome"])
    op.create_index(op.f("ix_leases_lead_id"), "leases", ["lead_id"])
    _leads_indexes()


def downgrade() -> None:
    for name in ("ix_leads_queue", "ix_leads_wake", *_PARTIAL):
        op.drop_index(name, table_name="leads")
    op.drop_index(op.f("ix_leases_lead_id"), table_name="leases")
    op.drop_index("ix_leases_campaign_outcome", table_name="leases")
    op.drop_table("leases")
