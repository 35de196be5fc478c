"""Keys the relay makes for itself on first start and keeps in the database.

Several relay processes must agree on the return-path key and the log-hashing key, and a
restart must not invalidate return paths already out in the world; so they live in the
shared store, unless the operator sets them in the settings.
"""

from __future__ import annotations

import secrets

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from relay.db import read_tx, write_tx
from relay.store.tables import meta


async def get_or_create(engine: AsyncEngine, name: str) -> bytes:
    async with read_tx(engine) as conn:
        row = (await conn.execute(sa.select(meta.c.value).where(meta.c.key == name))).first()
    if row:
        return bytes.fromhex(row.value)
    value = secrets.token_hex(32)
    try:
        async with write_tx(engine) as conn:
            await conn.execute(meta.insert().values(key=name, value=value))
    except IntegrityError:  # another process won the race: use its key
        return await get_or_create(engine, name)
    return bytes.fromhex(value)
