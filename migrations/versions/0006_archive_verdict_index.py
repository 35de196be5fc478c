"""Archive index on (verdict, id): a text search with a verdict filter that few records
match (``reject``, ``refused``, ``hold``) walks those records instead of every match of
the word (issue 14: "common word + a filter matching nothing" at 1M records).

Revision ID: 0006s
Revises: 0005h
Create Date: 2026-12-01
"""

from alembic import op

revision = "0006s"
down_revision = "0005h"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_archive_verdict", "archive", ["verdict", "id"])


def downgrade() -> None:
    op.drop_index("ix_archive_verdict", table_name="archive")
