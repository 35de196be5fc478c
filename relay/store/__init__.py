"""Durable state, owned here: each module of this package defines the tables it keeps and
is the only code that reads or writes them (the target of ../shared/architecture.md).

New tables start here; the older ones still live in ``relay.store.tables`` until they move.
"""
