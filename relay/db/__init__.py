"""Database access: schema, engines, migrations."""

from relay.db.engine import create_engine, inserted_id, is_sqlite, read_tx, write_tx

__all__ = ["create_engine", "inserted_id", "is_sqlite", "read_tx", "write_tx"]
