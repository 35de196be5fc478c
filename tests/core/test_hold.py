"""The policy's third answer end to end (issue 12, step 5): a message the policy cannot
judge is accepted (250), archived with verdict ``hold`` and not delivered; ops release it
(delivered through the normal queue) or refuse it (the sender gets a notice that names the
rule and leaks nothing), once, recorded append-only in ``hold_decisions``."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import sqlalchemy as sa

from relay.store import holds
from relay.store.archive import SearchFilter, search
from relay.store.holds import HoldError, hold_decisions
from tests.helpers import (
    BUYER,
    ORDER,
    SELLER,
    create_order,
    message,
    relay_cli,
    running_relay,
    send,
    write_settings,
)

# letters, but no language the identifier can name: the language rule cannot decide
UNKNOWN = ("Xq zrvv plk tmmr, qwv zzkp lorr vtnn mkkq prr, brx vollq ztt sne gharr. "
           "Vrokk tzam plirr, quvv nesk drallo. Zymm krett voll.\n")


async def _held(relay, order, subject: str) -> int:
    code, text = await send(relay.port, SELLER, [order.buyer_alias],
                            message(SELLER, order.buyer_alias, subject, UNKNOWN).as_bytes())
    assert code == 250, text
    rows = await search(relay.engine, SearchFilter(order_id=ORDER))
    row = next(r for r in rows if r["subject"] == subject)
    assert row["verdict"] == "hold"
    return int(row["id"])


async def test_hold_release_and_refuse(make_settings, sink, tmp_path, db_url) -> None:
    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    config = write_settings(tmp_path / "relay.toml", relay={"domain": settings.relay.domain},
                            database={"url": db_url})
    async with running_relay(settings) as relay:
        order = await create_order(relay, buyer_locale="en-GB", seller_name="Shop")
        first = await _held(relay, order, "First")
        second = await _held(relay, order, "Second")
        await asyncio.sleep(1.0)
        assert sink.messages == []
        assert [h.id for h in await holds.list_holds(relay.engine)] == [first, second]
        assert await holds.overdue(relay.engine, timedelta(0)) == 2

        code, out, err = await relay_cli(config, "hold", "list")
        assert code == 0, err
        assert str(first) in out and "wrong_language" in out

        code, out, err = await relay_cli(config, "hold", "release", str(first), "--by", "ops:ana")
        assert code == 0, err
        got = await sink.wait_for(1)
        assert got[0].rcpt_tos == [BUYER] and b"Xq zrvv" in got[0].data
        assert SELLER.encode() not in got[0].data

        code, out, err = await relay_cli(config, "hold", "release", str(first))
        assert code != 0 and "already decided" in err

        code, out, err = await relay_cli(
            config, "hold", "refuse", str(second), "--reason",
            "unreadable; the buyer is buyer@mail.example, call +44 20 7946 0321")
        assert code == 0, err
        notice = (await sink.wait_for(2))[1]
        assert notice.rcpt_tos == [SELLER]
        assert b"wrong_language" in notice.data
        for leak in (BUYER.encode(), b"buyer@mail.example", b"7946"):
            assert leak not in notice.data

        async with relay.engine.connect() as conn:
            rows = (await conn.execute(sa.select(hold_decisions).order_by(
                hold_decisions.c.id))).all()
        assert [(r.archive_id, r.decision, r.decided_by) for r in rows] == [
            (first, "release", "ops:ana"), (second, "refuse", rows[1].decided_by)]
        assert rows[1].decided_by.startswith("cli:") and rows[0].delivery_id is not None
        assert await holds.list_holds(relay.engine) == []
        try:
            await holds.refuse(relay.engine, second, by="x", reason="again",
                               domain="d", marketplace="m")
        except HoldError as err:
            assert "already decided" in str(err)
        else:
            raise AssertionError("a second decision was accepted")


async def test_hold_api(make_settings, db_url) -> None:
    """GET /v1/holds, release (then 409 for a second decision), refuse; ops scope only."""
    import hashlib

    import httpx

    from relay.api import create_app
    from relay.db import create_engine
    from relay.db.migrate import upgrade
    from relay.store import orders
    from relay.store.archive import Record
    from relay.store.commit import Entry, commit_now
    from relay.store.tables import utcnow
    from tests.helpers import DOMAIN

    settings = make_settings(api={"listen": "127.0.0.1:0", "ops_tokens": ["o-token-0123456789"],
                                  "marketplace_tokens": ["m-token-0123456789"]})
    engine = create_engine(db_url)
    await upgrade(engine)
    try:
        view = await orders.create_order(engine, DOMAIN, ORDER, buyer=BUYER, seller=SELLER,
                                         buyer_locale="en-GB", seller_name="Shop")
        ids = []
        for subject in ("One", "Two"):
            raw = message(SELLER, view.buyer_alias, subject, UNKNOWN).as_bytes()
            rec = Record(created_at=utcnow(), verdict="hold", original=raw,
                         sha256=hashlib.sha256(raw).hexdigest(), delivered=raw,
                         order_id=ORDER, direction="seller-to-buyer", alias=view.buyer_alias,
                         mail_from=SELLER, rcpt=BUYER, from_header=SELLER, subject=subject,
                         findings='[{"kind": "wrong_language", "rule": "wrong_language", '
                                  '"action": "hold", "where": "body.text", "excerpt": ""}]')
            ids += await commit_now(engine, [Entry(rec)])
        app = create_app(settings, engine)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        ops = {"Authorization": "Bearer o-token-0123456789"}
        base = "http://relay.test"
        async with httpx.AsyncClient(transport=transport, base_url=base) as ui:
            assert (await ui.get("/ui/holds")).status_code == 303     # login first
            r = await ui.post("/ui/login", data={"token": "o-token-0123456789", "next": "/ui/"},
                              headers={"Origin": base})
            assert r.status_code == 303, r.text
            page = await ui.get("/ui/holds")
            assert page.status_code == 200 and f"#{ids[0]}" in page.text
            assert "wrong_language" in page.text and "waiting" in page.text
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            r = await c.get("/v1/holds", headers={"Authorization": "Bearer m-token-0123456789"})
            assert r.status_code == 403
            r = await c.get("/v1/holds", headers=ops)
            assert r.status_code == 200 and [h["id"] for h in r.json()] == ids, r.text
            assert r.json()[0]["rules"] == ["wrong_language"]
            r = await c.post(f"/v1/holds/{ids[0]}/release", headers=ops)
            assert r.status_code == 200 and r.json()["delivery_id"] > 0, r.text
            r = await c.post(f"/v1/holds/{ids[0]}/release", headers=ops)
            assert r.status_code == 409, r.text
            r = await c.post(f"/v1/holds/{ids[1]}/refuse", headers=ops,
                             json={"reason": "not readable"})
            assert r.status_code == 200 and r.json()["notified"] is True, r.text
            r = await c.get(f"/v1/holds/{ids[1]}", headers=ops)
            assert r.json()["decision"] == "refuse" and r.json()["decided_by"] == "api:ops"
            assert (await c.get("/v1/holds", headers=ops)).json() == []
            assert (await c.get("/v1/holds/999999", headers=ops)).status_code == 404
    finally:
        await engine.dispose()
