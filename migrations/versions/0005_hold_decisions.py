"""Ops decisions on held messages (issue 12: the policy's ``hold`` verdict).

Revision ID: 0005h
Revises: 0004r
Create Date: 2026-12-01

``hold_decisions`` (relay.store.holds) records, once per held archive record, who released or
refused it, when and why; rows are only ever inserted, so the archive stays append-only
and a decision is never rewritten.
"""

import sqlalchemy as sa
from alembic import op

from relay.store.tables import BigId, UTCDateTime

revision = "0005h"
down_revision = "0004r"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hold_decisions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("archive_id", BigId, sa.ForeignKey("archive.id"), nullable=False,
                  unique=True),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("decided_by", sa.String(64), nullable=False, server_default=""),
        sa.Column("decided_at", UTCDateTime, nullable=False),
        sa.Column("delivery_id", BigId, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("hold_decisions")
