"""Tables. One schema for SQLite and PostgreSQL; Alembic migrations create it.

The archive and delivery_events tables are append-only: triggers created by the migration
make UPDATE and DELETE fail in the database itself, so no code path (or ops shell) can
quietly rewrite history. Deliveries are the mutable queue.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from relay.clock import utcnow as utcnow  # re-exported: the store's modules read the clock here

metadata = MetaData()

# SQLite autoincrement needs INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
BigId = BigInteger().with_variant(Integer, "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores naive UTC, returns aware UTC, so comparisons agree on both engines."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC)


parties = Table(
    "parties",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),  # comparison key (0003i)
    Column("registered_email", String(320), nullable=False, server_default=""),  # as given
    Column("display_name", String(200), nullable=False, server_default=""),
    Column("allow_spf_only", Boolean, nullable=False, server_default="0"),
    Column("created_at", UTCDateTime, nullable=False),
)

party_senders = Table(
    "party_senders",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("party_id", BigId, ForeignKey("parties.id"), nullable=False),
    Column("email", String(320), nullable=False),
    Column("registered_email", String(320), nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("party_id", "email", name="uq_party_senders_party_email"),
)

orders = Table(
    "orders",
    metadata,
    Column("id", String(19), primary_key=True),
    Column("buyer_id", BigId, ForeignKey("parties.id"), nullable=False),
    Column("seller_id", BigId, ForeignKey("parties.id"), nullable=False),
    Column("buyer_locale", String(35), nullable=False, server_default="en-US"),
    Column("buyer_name", String(200), nullable=False, server_default=""),
    Column("seller_name", String(200), nullable=False, server_default=""),
    Column("status", String(10), nullable=False, server_default="open"),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    Column("expires_at", UTCDateTime, nullable=True),
    Column("delivered_at", UTCDateTime, nullable=True),
)

aliases = Table(
    "aliases",
    metadata,
    Column("local_part", String(64), primary_key=True),
    Column("order_id", String(19), ForeignKey("orders.id"), nullable=False),
    # The party this alias stands for: the buyer alias reaches the buyer.
    Column("stands_for", String(6), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("order_id", "stands_for", name="uq_aliases_order_role"),
)

archive = Table(
    "archive",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("session_id", String(32), nullable=False, server_default=""),
    Column("kind", String(10), nullable=False, server_default="message"),  # message|notice
    Column("order_id", String(19), nullable=True),
    Column("direction", String(16), nullable=False, server_default=""),
    Column("alias", String(320), nullable=False, server_default=""),
    Column("mail_from", String(320), nullable=False, server_default=""),
    Column("rcpt", String(320), nullable=False, server_default=""),
    Column("client_ip", String(64), nullable=False, server_default=""),
    Column("helo", String(255), nullable=False, server_default=""),
    Column("from_header", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False, server_default=""),
    Column("message_id", Text, nullable=False, server_default=""),
    Column("relay_message_id", String(200), nullable=False, server_default=""),
    Column("verdict", String(10), nullable=False),  # relay.core.outcomes.Verdict
    Column("reason", Text, nullable=False, server_default=""),
    Column("findings", Text, nullable=False, server_default="[]"),
    Column("auth", Text, nullable=False, server_default="{}"),
    Column("original", LargeBinary, nullable=False),
    Column("delivered", LargeBinary, nullable=True),
    Column("sha256", String(64), nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    # Full size of what arrived; truncated: ``original`` is only its start (0003i).
    Column("size", BigInteger, nullable=True),
    Column("truncated", Boolean, nullable=False, server_default="0"),
    # relay.core.outcomes.ReasonCode beside ``reason``; NULL on records before 0007r.
    Column("reason_code", String(16), nullable=True),
)
Index("ix_archive_order", archive.c.order_id, archive.c.id)
Index("ix_archive_created", archive.c.created_at)
Index("ix_archive_verdict", archive.c.verdict, archive.c.id)  # migration 0006s

message_ids = Table(
    "message_ids",
    metadata,
    # The Message-ID we minted (without angle brackets) and the author's own.
    Column("relay_id", String(200), primary_key=True),
    Column("original_id", Text, nullable=False),
    Column("order_id", String(19), nullable=False),
    Column("author", String(6), nullable=False),  # buyer|seller
    Column("archive_id", BigId, nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
)
Index("ix_message_ids_original", message_ids.c.original_id)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("archive_id", BigId, ForeignKey("archive.id"), nullable=False),
    Column("token", String(32), nullable=False, unique=True),  # for the signed return path
    Column("mail_from", String(320), nullable=False),  # "" = null return path
    Column("rcpt", String(320), nullable=False),
    Column("status", String(10), nullable=False),  # relay.core.outcomes.DeliveryStatus
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("claimed_by", String(64), nullable=False, server_default=""),
    Column("claimed_until", UTCDateTime, nullable=True),
    Column("last_code", Integer, nullable=True),
    Column("last_error", Text, nullable=False, server_default=""),
    Column("notify", Boolean, nullable=False, server_default="1"),  # bounce notice on failure
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
Index("ix_deliveries_due", deliveries.c.status, deliveries.c.next_attempt_at)
Index("ix_deliveries_archive", deliveries.c.archive_id)

delivery_events = Table(
    "delivery_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("delivery_id", BigId, ForeignKey("deliveries.id"), nullable=False),
    Column("archive_id", BigId, nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("event", String(16), nullable=False),  # delivered|deferred|failed|expired|bounced
    Column("code", Integer, nullable=True),
    Column("detail", Text, nullable=False, server_default=""),
)
Index("ix_delivery_events_archive", delivery_events.c.archive_id)

meta = Table(
    "relay_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
)

APPEND_ONLY_TABLES = ("archive", "delivery_events")
