"""dialing rules: E.164 numbers, zone keys, calling hours, do-not-call, callbacks, caps

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 08:00:00

Existing leads get their comparison form and zone key from the number alone (no account
had a default country before this revision), else the account's time zone; the queue
indexes gain the zone key.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dialbase import phones

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

Column = str | sa.TextClause
_ORDER: list[Column] = [sa.text("priority DESC"), "due_at", "id"]
_QUEUE: dict[str, tuple[list[Column], str | None]] = {
    "ix_leads_queue": (["campaign_id", "status", "time_zones", *_ORDER], None),
    "ix_leads_agent_queue": (
        ["campaign_id", "status", "agent_id", "time_zones", *_ORDER],
        "agent_id",
    ),
    "ix_leads_skill_queue": (["campaign_id", "status", "skill", "time_zones", *_ORDER], "skill"),
}
_OLD_QUEUE: dict[str, tuple[list[Column], str | None]] = {
    "ix_leads_queue": (["campaign_id", "status", *_ORDER], None),
    "ix_leads_agent_queue": (["campaign_id", "status", "agent_id", *_ORDER], "agent_id"),
    "ix_leads_skill_queue": (["campaign_id", "status", "skill", *_ORDER], "skill"),
}
_BACKFILL_ROWS = 5000


def _create(indexes: dict[str, tuple[list[Column], str | None]]) -> None:
    for name, (columns, partial) in indexes.items():
        where = sa.text(f"{partial} IS NOT NULL") if partial else None
        op.create_index(name, "leads", columns, sqlite_where=where, postgresql_where=where)


def _backfill() -> None:
    """Comparison forms and zone keys of the leads stored before this revision."""
    conn = op.get_bind()
    last = 0
    while True:
        rows = conn.execute(
            sa.text(
                "SELECT l.id, l.phone_number, l.extra, a.timezone FROM leads l"
                " JOIN campaigns c ON c.id = l.campaign_id JOIN accounts a ON a.id = c.account_id"
                " WHERE l.id > :last ORDER BY l.id LIMIT :rows"
            ),
            {"last": last, "rows": _BACKFILL_ROWS},
        ).fetchall()
        if not rows:
            return
        updates = []
        for lead_id, number, extra, account_zone in rows:
            e164, candidates = phones.normalized(number, None)
            given = _given_zone(extra)
            updates.append(
                {
                    "id": lead_id,
                    "e164": e164,
                    "zones": phones.lead_zones(given, candidates, account_zone),
                }
            )
        conn.execute(
            sa.text("UPDATE leads SET phone_e164 = :e164, time_zones = :zones WHERE id = :id"),
            updates,
        )
        last = rows[-1][0]


def _given_zone(extra: object) -> str | None:
    import json

    values = json.loads(extra) if isinstance(extra, str) else extra
    return phones.given_zone(values) if isinstance(values, dict) else None


def upgrade() -> None:
    op.add_column("accounts", sa.Column("default_country", sa.String(2), nullable=True))
    op.add_column(
        "accounts",
        sa.Column("max_daily_attempts", sa.Integer(), nullable=False, server_default="0"),
    )
    op.add_column("campaigns", sa.Column("retry_delays", sa.JSON(), nullable=True))
    op.add_column("campaigns", sa.Column("calling_hours", sa.String(1000), nullable=True))
    op.add_column("leads", sa.Column("phone_e164", sa.String(32), nullable=True))
    op.add_column("leads", sa.Column("time_zones", sa.String(), nullable=True))
    op.add_column("leads", sa.Column("callback_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("leads", sa.Column("callback_agent", sa.String(255), nullable=True))
    op.add_column("leads", sa.Column("closed_reason", sa.String(32), nullable=True))
    op.add_column("leases", sa.Column("account_id", sa.Integer(), nullable=True))
    op.add_column("leases", sa.Column("phone_e164", sa.String(32), nullable=True))
    op.add_column("write_batches", sa.Column("listed", sa.JSON(), nullable=True))
    _backfill()
    # Numbers sent with a "+" may have another comparison form: guard that form too.
    op.execute(
        "INSERT INTO campaign_numbers (campaign_id, phone_number)"
        " SELECT DISTINCT campaign_id, phone_e164 FROM leads WHERE true ON CONFLICT DO NOTHING"
    )
    op.execute(
        "UPDATE leases SET account_id = (SELECT c.account_id FROM campaigns c"
        " WHERE c.id = leases.campaign_id),"
        " phone_e164 = (SELECT l.phone_e164 FROM leads l WHERE l.id = leases.lead_id)"
    )
    op.create_table(
        "campaign_zones",
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("time_zones", sa.String(), nullable=False),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_campaign_zones_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("campaign_id", "time_zones", name=op.f("pk_campaign_zones")),
    )
    op.execute(
        "INSERT INTO campaign_zones (campaign_id, time_zones)"
        " SELECT DISTINCT campaign_id, time_zones FROM leads"
    )
    op.create_table(
        "dnc_entries",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.String(1000), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_dnc_entries_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", "number", name=op.f("pk_dnc_entries")),
    )
    for name in _QUEUE:
        op.drop_index(name, table_name="leads")
    _create(_QUEUE)
    op.create_index("ix_leads_campaign_e164", "leads", ["campaign_id", "phone_e164"])
    waiting = sa.text("status IN ('leased', 'retry', 'held')")
    op.create_index(
        "ix_leads_waiting",
        "leads",
        ["campaign_id", "due_at"],
        sqlite_where=waiting,
        postgresql_where=waiting,
    )
    op.create_index("ix_leases_number", "leases", ["account_id", "phone_e164", "leased_at"])


def downgrade() -> None:
    op.drop_index("ix_leases_number", table_name="leases")
    op.drop_index("ix_leads_waiting", table_name="leads")
    op.drop_index("ix_leads_campaign_e164", table_name="leads")
    for name in _QUEUE:
        op.drop_index(name, table_name="leads")
    _create(_OLD_QUEUE)
    op.drop_table("dnc_entries")
    op.drop_table("campaign_zones")
    with op.batch_alter_table("write_batches") as batch:
        batch.drop_column("listed")
    with op.batch_alter_table("leases") as batch:
        batch.drop_column("phone_e164")
        batch.drop_column("account_id")
    with op.batch_alter_table("leads") as batch:
        for column in (
            "closed_reason",
            "callback_agent",
            "callback_at",
            "time_zones",
            "phone_e164",
        ):
            batch.drop_column(column)
    with op.batch_alter_table("campaigns") as batch:
        batch.drop_column("calling_hours")
        batch.drop_column("retry_delays")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_column("max_daily_attempts")
        batch.drop_column("default_country")
