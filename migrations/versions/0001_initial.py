"""Initial schema: parties, orders, aliases, archive (append-only), queue.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op

from relay.store.tables import UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer, "sqlite")
APPEND_ONLY = ("archive", "delivery_events")


def _pk() -> sa.Column:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def _text(name: str, length: int | None = None) -> sa.Column:
    kind = sa.String(length) if length else sa.Text
    return sa.Column(name, kind, nullable=False, server_default="")


def upgrade() -> None:
    op.create_table(
        "parties",
        _pk(),
        sa.Column("email", sa.String(320), nullable=False, unique=True),
        _text("display_name", 200),
        sa.Column("allow_spf_only", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "party_senders",
        _pk(),
        sa.Column("party_id", BigId, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("party_id", "email", name="uq_party_senders_party_email"),
    )
    op.create_table(
        "orders",
        sa.Column("id", sa.String(19), primary_key=True),
        sa.Column("buyer_id", BigId, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("seller_id", BigId, sa.ForeignKey("parties.id"), nullable=False),
        sa.Column("buyer_locale", sa.String(35), nullable=False, server_default="en-US"),
        _text("buyer_name", 200),
        _text("seller_name", 200),
        sa.Column("status", sa.String(10), nullable=False, server_default="open"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("closed_at", UTCDateTime, nullable=True),
        sa.Column("expires_at", UTCDateTime, nullable=True),
        sa.Column("delivered_at", UTCDateTime, nullable=True),
    )
    op.create_table(
        "aliases",
        sa.Column("local_part", sa.String(64), primary_key=True),
        sa.Column("order_id", sa.String(19), sa.ForeignKey("orders.id"), nullable=False),
        sa.Column("stands_for", sa.String(6), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("order_id", "stands_for", name="uq_aliases_order_role"),
    )
    op.create_table(
        "archive",
        _pk(),
        sa.Column("created_at", UTCDateTime, nullable=False),
        _text("session_id", 32),
        sa.Column("kind", sa.String(10), nullable=False, server_default="message"),
        sa.Column("order_id", sa.String(19), nullable=True),
        _text("direction", 16),
        _text("alias", 320),
        _text("mail_from", 320),
        _text("rcpt", 320),
        _text("client_ip", 64),
        _text("helo", 255),
        _text("from_header"),
        _text("subject"),
        _text("message_id"),
        _text("relay_message_id", 200),
        sa.Column("verdict", sa.String(10), nullable=False),
        _text("reason"),
        sa.Column("findings", sa.Text, nullable=False, server_default="[]"),
        sa.Column("auth", sa.Text, nullable=False, server_default="{}"),
        sa.Column("original", sa.LargeBinary, nullable=False),
        sa.Column("delivered", sa.LargeBinary, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_archive_order", "archive", ["order_id", "id"])
    op.create_index("ix_archive_created", "archive", ["created_at"])
    op.create_table(
        "message_ids",
        sa.Column("relay_id", sa.String(200), primary_key=True),
        sa.Column("original_id", sa.Text, nullable=False),
        sa.Column("order_id", sa.String(19), nullable=False),
        sa.Column("author", sa.String(6), nullable=False),
        sa.Column("archive_id", BigId, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_message_ids_original", "message_ids", ["original_id"])
    op.create_table(
        "deliveries",
        _pk(),
        sa.Column("archive_id", BigId, sa.ForeignKey("archive.id"), nullable=False),
        sa.Column("token", sa.String(32), nullable=False, unique=True),
        sa.Column("mail_from", sa.String(320), nullable=False),
        sa.Column("rcpt", sa.String(320), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime, nullable=False),
        _text("claimed_by", 64),
        sa.Column("claimed_until", UTCDateTime, nullable=True),
        sa.Column("last_code", sa.Integer, nullable=True),
        _text("last_error"),
        sa.Column("notify", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_index("ix_deliveries_due", "deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_deliveries_archive", "deliveries", ["archive_id"])
    op.create_table(
        "delivery_events",
        _pk(),
        sa.Column("delivery_id", BigId, sa.ForeignKey("deliveries.id"), nullable=False),
        sa.Column("archive_id", BigId, nullable=False),
        sa.Column("at", UTCDateTime, nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("code", sa.Integer, nullable=True),
        _text("detail"),
    )
    op.create_index("ix_delivery_events_archive", "delivery_events", ["archive_id"])
    op.create_table(
        "relay_meta",
        sa.Column("key", sa.String(64), primary_key=True),
        sa.Column("value", sa.Text, nullable=False),
    )
    _append_only_triggers()


def _append_only_triggers() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for table in APPEND_ONLY:
            for verb in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END"
                )
        return
    op.execute(
        """
        CREATE FUNCTION relay_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only', TG_TABLE_NAME
            USING ERRCODE = 'insufficient_privilege';
        END $$
        """
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION relay_append_only()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION relay_append_only()"
        )


def downgrade() -> None:
    raise RuntimeError("the archive is permanent: downgrading the initial schema would drop it")
