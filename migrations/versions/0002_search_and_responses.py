"""Archive full-text search and response-time exemptions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27

``archive_text`` holds each record's decoded body text (SQL cannot decode MIME, so Python
writes it: relay.store.search). The engines index it themselves: SQLite with an FTS5 table whose
external content is ``archive_text``, fed by a trigger; PostgreSQL with a generated
``tsvector`` column and a GIN index. ``archive_text`` and ``response_exemptions`` are
insert-only like the archive: an external-content FTS index stays correct only if its
content never changes, and an exemption is an audit fact ("ops said no reply needed").
Existing records are indexed here, so an upgraded archive is searchable at once.
"""

import sqlalchemy as sa
from alembic import op

from relay.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
INSERT_ONLY = ("archive_text", "response_exemptions")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "archive_text",
        sa.Column("archive_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("subject", sa.Text, nullable=False, server_default=""),
        sa.Column("body_text", sa.Text, nullable=False, server_default=""),
        sa.Column("automatic", sa.Boolean, nullable=False, server_default=sa.false()),
    )
    op.create_table(
        "response_exemptions",
        sa.Column("archive_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("order_id", sa.String(19), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.String(20), nullable=False, server_default=""),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    # Search filters: a seller's or buyer's orders, and the alias a record was sent to.
    op.create_index("ix_orders_seller", "orders", ["seller_id"])
    op.create_index("ix_orders_buyer", "orders", ["buyer_id"])
    op.create_index("ix_archive_alias", "archive", ["alias", "id"])
    if sqlite:
        op.execute(
            "CREATE VIRTUAL TABLE archive_fts USING fts5(subject, body_text, "
            "content='archive_text', content_rowid='archive_id', "
            "tokenize='unicode61 remove_diacritics 2')"
        )
        op.execute(
            "CREATE TRIGGER archive_text_to_fts AFTER INSERT ON archive_text BEGIN "
            "INSERT INTO archive_fts(rowid, subject, body_text) "
            "VALUES (new.archive_id, new.subject, new.body_text); END"
        )
        for table in INSERT_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
    else:
        op.execute(
            "ALTER TABLE archive_text ADD COLUMN document tsvector GENERATED ALWAYS AS ("
            "setweight(to_tsvector('simple'::regconfig, subject), 'A') || "
            "to_tsvector('simple'::regconfig, body_text)) STORED"
        )
        op.execute("CREATE INDEX ix_archive_text_document ON archive_text USING GIN (document)")
        for table in INSERT_ONLY:
            # relay_append_only() comes from migration 0001.
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION relay_append_only()"
            )
    _backfill()


def _backfill(batch: int = 500) -> None:
    from relay.store.search import archive_text, text_row

    bind = op.get_bind()
    archive = sa.table("archive", sa.column("id"), sa.column("subject"), sa.column("original"))
    last = 0
    while True:
        rows = bind.execute(
            sa.select(archive.c.id, archive.c.subject, archive.c.original)
            .where(archive.c.id > last)
            .order_by(archive.c.id)
            .limit(batch)
        ).all()
        if not rows:
            return
        values = [text_row(r.id, r.subject, bytes(r.original)) for r in rows]
        bind.execute(archive_text.insert().values(values))
        last = rows[-1].id


def downgrade() -> None:
    raise RuntimeError("the search index and exemptions are part of the permanent archive")
