"""Registered address forms, and bounded archive records for unproven senders (issue 9).

Revision ID: 0003i
Revises: 0002
Create Date: 2026-12-01

``parties.email`` and ``party_senders.email`` are the comparison keys (NFC, lower-case
local part, A-label domain: relay.authn.fromaddr.canonical_address); the new
``registered_email`` keeps the address as the marketplace registered it (mixed case,
U-label), for display, delivery and the archive ("" means the same as ``email``).

``archive.size`` is the full size of the message received and ``archive.truncated`` says
that ``original`` holds only its header section and the start of its body (a sender not
proven to be a party; ``archive.refused_keep``); ``sha256`` is then the digest of the whole
message. Older records keep NULL and the hash chain covers the new fields only when set.
"""

import unicodedata

import sqlalchemy as sa
from alembic import op

revision = "0003i"
down_revision = "0002"
branch_labels = None
depends_on = None


def _canonical(address: str) -> str:
    local, _, domain = address.rpartition("@")
    try:
        import idna

        domain = idna.encode(domain.rstrip("."), uts46=True).decode("ascii")
    except Exception:
        pass
    return f"{unicodedata.normalize('NFC', local).lower()}@{domain.lower().rstrip('.')}"


def upgrade() -> None:
    for table in ("parties", "party_senders"):
        op.add_column(
            table,
            sa.Column("registered_email", sa.String(320), nullable=False, server_default=""),
        )
    op.add_column("archive", sa.Column("size", sa.BigInteger, nullable=True))
    op.add_column(
        "archive", sa.Column("truncated", sa.Boolean, nullable=False, server_default=sa.false())
    )
    # Addresses stored before were lower-cased only: give international ones their key.
    bind = op.get_bind()
    for table in ("parties", "party_senders"):
        rows = bind.execute(sa.text(f"SELECT id, email FROM {table}")).all()
        for row_id, email in rows:
            key = _canonical(email)
            if key != email:
                clash = bind.execute(
                    sa.text(f"SELECT 1 FROM {table} WHERE email = :k"), {"k": key}
                ).first()
                if clash is None:
                    bind.execute(
                        sa.text(
                            f"UPDATE {table} SET email = :k, registered_email = :e WHERE id = :i"
                        ),
                        {"k": key, "e": email, "i": row_id},
                    )


def downgrade() -> None:
    op.drop_column("archive", "truncated")
    op.drop_column("archive", "size")
    for table in ("party_senders", "parties"):
        op.drop_column(table, "registered_email")
