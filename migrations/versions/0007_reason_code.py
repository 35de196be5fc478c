"""``archive.reason_code``: why a record has its verdict, as a code (issue 11).

relay.core.outcomes.ReasonCode, stored beside the human ``reason`` text so metrics and the
API count codes and never parse the text back. Nullable: records archived before this
revision have none (the archive is append-only: its triggers refuse the UPDATE a backfill
would need, and the hash chain covers the code only where it is set, so old records verify
as before). The triggers of 0001 guard UPDATE and DELETE only; an INSERT naming the new
column passes them on SQLite and PostgreSQL alike.

Revision ID: 0007r
Revises: 0006s
Create Date: 2026-12-08
"""

import sqlalchemy as sa
from alembic import op

revision = "0007r"
down_revision = "0006s"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("archive", sa.Column("reason_code", sa.String(16), nullable=True))


def downgrade() -> None:
    op.drop_column("archive", "reason_code")
