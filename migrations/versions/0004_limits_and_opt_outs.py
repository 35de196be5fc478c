"""Shared rate counters and buyer opt-outs (issue 13).

Revision ID: 0004r
Revises: 0003i
Create Date: 2026-12-01

``rate_counters`` (relay.store.counters) holds one row per counted thing and fixed window
(``window_start`` in Unix seconds, 0 for a lifetime counter); every relay on the database
bumps the same rows, so limits hold across processes and restarts. ``opt_outs``
(relay.store.optouts) is the current opt-out state of an order or a buyer, with who set
it and when; opting back in deletes the row.
"""

import sqlalchemy as sa
from alembic import op

from relay.store.tables import UTCDateTime

revision = "0004r"
down_revision = "0003i"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rate_counters",
        sa.Column("scope", sa.String(40), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("window_start", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_index("ix_rate_counters_window", "rate_counters", ["window_start"])
    op.create_table(
        "opt_outs",
        sa.Column("scope", sa.String(10), primary_key=True),
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("created_by", sa.String(40), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("opt_outs")
    op.drop_index("ix_rate_counters_window", "rate_counters")
    op.drop_table("rate_counters")
