"""imports: queued bulk requests and files, their staged rows and each row's result

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 11:30:00

An import is stored (with a bulk request's rows) before its request is answered; the
import runner adds its rows in chunks, committing each chunk's leads, results, counters
and resume cursor (``next_row``) together. ``claimed_until`` is the runner's lease: an
import whose lease lapsed (its worker was killed) is claimed again and resumed.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "imports",
        sa.Column("id", BIG_ID, autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("campaign_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("status", sa.String(8), nullable=False),
        sa.Column("columns", sa.JSON(), nullable=False),
        sa.Column("check_duplicate", sa.Boolean(), nullable=False),
        sa.Column("start", sa.Boolean(), nullable=False),
        sa.Column("file_path", sa.Text(), nullable=True),
        sa.Column("file_format", sa.String(8), nullable=True),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("next_row", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("claimed_by", sa.String(36), nullable=True),
        sa.Column("public_url", sa.Text(), nullable=True),
        sa.Column("callback_url", sa.Text(), nullable=True),
        sa.Column("callback_attempts", sa.Integer(), nullable=False),
        sa.Column("callback_next_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_done_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("callback_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_imports_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["campaign_id"],
            ["campaigns.id"],
            name=op.f("fk_imports_campaign_id_campaigns"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    op.create_index("ix_imports_status_claimed", "imports", ["status", "claimed_until"])
    op.create_index("ix_imports_callback_next_at", "imports", ["callback_next_at"])
    op.create_index("ix_imports_account_id", "imports", ["account_id"])
    for table in ("import_rows", "import_results"):
        extra = (
            [sa.Column("data", sa.JSON(), nullable=False)]
            if table == "import_rows"
            else [
                sa.Column("line", sa.Integer(), nullable=True),
                sa.Column("phone_number", sa.Text(), nullable=True),
                sa.Column("result", sa.String(16), nullable=False),
                sa.Column("message", sa.Text(), nullable=True),
                sa.Column("data", sa.JSON(), nullable=True),
            ]
        )
        op.create_table(
            table,
            sa.Column("import_id", BIG_ID, nullable=False),
            sa.Column("idx", sa.Integer(), nullable=False),
            *extra,
            sa.ForeignKeyConstraint(
                ["import_id"],
                ["imports.id"],
                name=op.f(f"fk_{table}_import_id_imports"),
                ondelete="CASCADE",
            ),
            sa.PrimaryKeyConstraint("import_id", "idx", name=op.f(f"pk_{table}")),
        )


def downgrade() -> None:
    op.drop_table("import_results")
    op.drop_table("import_rows")
    op.drop_index("ix_imports_account_id", table_name="imports")
    op.drop_index("ix_imports_callback_next_at", table_name="imports")
    op.drop_index("ix_imports_status_claimed", table_name="imports")
    op.drop_table("imports")
