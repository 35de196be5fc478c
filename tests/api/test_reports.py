"""The 24-hour rule: late and overdue replies, automatic replies, "no response needed"."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest

from relay.api import create_app
from relay.store import orders, reports
from relay.store.tables import utcnow
from tests.api.conftest import MARKET_TOKEN, OPS_TOKEN, run_cli
from tests.helpers import DOMAIN, ORDER, SELLER

AUTO = {"Auto_Submitted": "auto-replied"}


async def _scenario(engine: Any, order: Any, put: Any) -> dict[str, int]:
    """Buyer messages at known ages; replies on time, late, automatic, or never."""
    now = utcnow()
    h = lambda n: now - timedelta(hours=n)  # noqa: E731
    ids = {}
    ids["on_time"] = await put(order, "buyer-to-seller", "a", at=h(100))
    await put(order, "seller-to-buyer", "re a", at=h(98))  # answered in 2 h
    ids["late"] = await put(order, "buyer-to-seller", "b", at=h(90))
    await put(order, "seller-to-buyer", "away", at=h(89), headers=AUTO)  # does not stop it
    ids["late_too"] = await put(order, "buyer-to-seller", "c", at=h(80))
    await put(order, "seller-to-buyer", "re b", at=h(60))  # 30 h (late) and 20 h
    await put(order, "seller-to-buyer", "refused reply", at=h(50), verdict="reject")
    ids["overdue"] = await put(order, "buyer-to-seller", "d", at=h(48))
    ids["exempt"] = await put(order, "buyer-to-seller", "thanks!", at=h(47))
    ids["fresh"] = await put(order, "buyer-to-seller", "e", at=h(2))
    ids["refused"] = await put(order, "buyer-to-seller", "f", at=h(70), verdict="refused")
    await put(order, "buyer-to-seller", "out of office", at=h(30), headers=AUTO)  # asks nothing
    other = await orders.create_order(
        engine, DOMAIN, "200-0000000-0000001", buyer="b2@x.example", seller="s2@y.example"
    )
    await put(other, "buyer-to-seller", "old", at=now - timedelta(days=20))
    return ids


async def test_response_times(engine, order, archive_msg) -> None:
    ids = await _scenario(engine, order, archive_msg)
    mark = await reports.exempt(engine, ORDER, ids["exempt"], reason="a thank-you", by="ops")
    assert mark["archive_id"] == ids["exempt"]
    assert (await reports.exempt(engine, ORDER, ids["exempt"], reason="again")) == mark
    week = await reports.response_times(engine, days=7)
    assert [s["seller"] for s in week["sellers"]] == [SELLER]
    s = week["sellers"][0]
    assert (s["buyer_messages"], s["answered"], s["answered_late"]) == (5, 3, 1)
    assert (s["open_overdue"], s["open_within_deadline"], s["exempted"]) == (1, 1, 1)
    assert s["late_rate"] == 0.5  # (1 late + 1 overdue) / (3 answered + 1 overdue)
    assert s["average_response_seconds"] == pytest.approx((2 + 30 + 20) * 3600 / 3, abs=5)
    assert [o["archive_id"] for o in s["overdue"]] == [ids["overdue"]]
    assert s["overdue"][0]["hours_waiting"] == pytest.approx(48, abs=0.1)
    month = await reports.response_times(engine, days=30)
    assert [s["seller"] for s in month["sellers"]] == ["s2@y.example", SELLER]
    only = await reports.response_times(engine, days=30, seller="S2@y.example")
    assert [s["seller"] for s in only["sellers"]] == ["s2@y.example"]
    assert only["sellers"][0]["open_overdue"] == 1 and only["sellers"][0]["late_rate"] == 1.0
    nobody = await reports.response_times(engine, days=7, seller="idle@z.example")
    assert nobody["sellers"][0]["buyer_messages"] == 0 and nobody["sellers"][0]["late_rate"] is None
    with pytest.raises(reports.ReportError):
        await reports.response_times(engine, days=14)


async def test_exemption_rules(engine, order, archive_msg) -> None:
    reply = await archive_msg(order, "seller-to-buyer", "hello")
    with pytest.raises(reports.ReportError, match="buyer"):
        await reports.exempt(engine, ORDER, reply)
    with pytest.raises(reports.ReportError) as err:
        await reports.exempt(engine, "999-9999999-9999999", reply)
    assert isinstance(err.value, reports.ReportNotFound)


async def test_report_over_api_and_cli(settings, engine, order, archive_msg) -> None:
    ids = await _scenario(engine, order, archive_msg)
    app = create_app(settings, engine)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
        path = f"/v1/orders/{ORDER}/messages/{ids['exempt']}/no-response-needed"
        r = await c.post(
            path,
            json={"reason": "thank-you note"},
            headers={"Authorization": f"Bearer {MARKET_TOKEN}"},
        )
        assert r.status_code == 201 and r.json()["reason"] == "thank-you note"
        thread = await c.get(
            f"/v1/orders/{ORDER}/messages", headers={"Authorization": f"Bearer {MARKET_TOKEN}"}
        )
        flags = {m["id"]: m["no_response_needed"] for m in thread.json()["messages"]}
        assert flags[ids["exempt"]] and not flags[ids["overdue"]]
        ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
        r = await c.get("/v1/reports/response-times", params={"days": "7"}, headers=ops)
        api_report = r.json()
        assert api_report["sellers"][0]["late_rate"] == 0.5
        r = await c.get("/v1/reports/response-times", params={"days": "14"}, headers=ops)
        assert r.status_code == 422 and r.json()["error"]["field"] == "days"
        bad = f"/v1/orders/{ORDER}/messages/{ids['on_time'] + 1}/no-response-needed"
        r = await c.post(bad, json={}, headers=ops)  # a seller message
        assert r.status_code == 422 and r.json()["error"]["field"] == "archive_id"
    out = await run_cli(settings, "report", "response-times", "--days", "7", "--json")
    assert out.exit_code == 0, out.output
    cli_report = json.loads(out.output)
    assert cli_report["sellers"] == api_report["sellers"]
    out = await run_cli(settings, "report", "response-times", "--seller", SELLER, "--days", "7")
    assert out.exit_code == 0 and "50%" in out.output and f"record {ids['overdue']}" in out.output
