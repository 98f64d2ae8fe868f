"""API family: bearer tokens, shared secrets, unique API keys

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 11:00:00

API keys become unique across accounts (the older add endpoint names an account by its key
alone). A database where two accounts share a key cannot take the unique index: the upgrade
stops with the user names to give a new key (``dialbase account rotate-key``).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _refuse_shared_keys() -> None:
    rows = op.get_bind().execute(
        sa.text(
            "SELECT username FROM accounts WHERE api_key_hash IN"
            " (SELECT api_key_hash FROM accounts GROUP BY api_key_hash HAVING COUNT(*) > 1)"
            " ORDER BY username"
        )
    )
    shared = [row[0] for row in rows]
    if shared:
        raise RuntimeError(
            "API keys must be unique across accounts, and these accounts share one: "
            + ", ".join(shared)
            + ". Give each a new key with `dialbase account rotate-key`, then migrate again."
        )


def upgrade() -> None:
    _refuse_shared_keys()
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(sa.Column("token_id", sa.String(36), nullable=True))
        batch.create_unique_constraint(op.f("uq_accounts_api_key_hash"), ["api_key_hash"])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(36), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["accounts.id"],
            name=op.f("fk_api_tokens_account_id_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
    )
    op.create_index("ix_api_tokens_account_issued", "api_tokens", ["account_id", "issued_at"])
    op.create_table(
        "app_secrets",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_app_secrets")),
    )


def downgrade() -> None:
    op.drop_table("app_secrets")
    op.drop_index("ix_api_tokens_account_issued", table_name="api_tokens")
    op.drop_table("api_tokens")
    with op.batch_alter_table("accounts") as batch:
        batch.drop_constraint(op.f("uq_accounts_api_key_hash"), type_="unique")
        batch.drop_column("token_id")
