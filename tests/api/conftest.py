"""Fixtures for the API, search, report and template tests: a migrated database with one
order, and a way to archive messages through the real commit path at chosen times."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import pytest

from relay.db import create_engine
from relay.db.migrate import upgrade
from relay.store import orders
from relay.store.archive import Record
from relay.store.commit import Entry, commit_now
from relay.store.tables import utcnow
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER, message, test_settings

MARKET_TOKEN = "m-token-0123456789"
OPS_TOKEN = "o-token-0123456789"
BOTH_TOKEN = "b-token-0123456789"


@pytest.fixture
def settings(db_url: str) -> Any:
    return test_settings(
        db_url,
        api={
            "listen": "127.0.0.1:0",
            "marketplace_tokens": [MARKET_TOKEN, BOTH_TOKEN],
            "ops_tokens": [OPS_TOKEN, BOTH_TOKEN],
        },
    )


@pytest.fixture
async def engine(settings: Any) -> AsyncIterator[Any]:
    eng = create_engine(settings.database.url)
    await upgrade(eng)
    yield eng
    await eng.dispose()


@pytest.fixture
async def order(engine: Any) -> orders.OrderView:
    return await orders.create_order(
        engine,
        DOMAIN,
        ORDER,
        buyer=BUYER,
        seller=SELLER,
        buyer_locale="de-DE",
        buyer_name="Alice",
        seller_name="Shop GmbH",
    )


Archiver = Callable[..., Any]


@pytest.fixture
def archive_msg(engine: Any) -> Archiver:
    """Archive one message of ``order`` as the pipeline would (verdict deliver by default)."""

    async def put(
        view: orders.OrderView,
        direction: str,
        subject: str = "Question",
        body: str = "Hello\n",
        *,
        at: datetime | None = None,
        verdict: str = "deliver",
        findings: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> int:
        buyer_side = direction == "buyer-to-seller"
        sender = view.buyer if buyer_side else view.seller
        alias = view.seller_alias if buyer_side else view.buyer_alias
        raw = message(sender, alias, subject, body, **(headers or {})).as_bytes()
        record = Record(
            created_at=at or utcnow(),
            verdict=verdict,
            original=raw,
            sha256=hashlib.sha256(raw).hexdigest(),
            delivered=raw if verdict in ("deliver", "redact") else None,
            order_id=view.id,
            direction=direction,
            alias=alias,
            mail_from=sender,
            rcpt=view.seller if buyer_side else view.buyer,
            from_header=sender,
            subject=subject,
            findings=json.dumps(findings or []),
        )
        ids = await commit_now(engine, [Entry(record)])
        return ids[0]

    return put


async def run_cli(settings: Any, *args: str) -> Any:
    """Invoke ``relay ARGS`` against the test database, off the event loop (the CLI runs
    its own loop, as it does from a shell)."""
    import asyncio

    from click.testing import CliRunner

    from relay.cli import main
    from relay.log import configure

    env = {
        "RELAY_DATABASE__URL": settings.database.url,
        "RELAY_RELAY__DOMAIN": DOMAIN,
        "RELAY_AUTH__MODE": "off",
    }
    # The relay under test logs from this process while CliRunner has swapped sys.stdout:
    # keep every log line on the real stderr, before and after (the CLI may reconfigure).
    configure("console", "info", sys.__stderr__)
    result = await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)
    configure("console", "info", sys.__stderr__)
    return result
