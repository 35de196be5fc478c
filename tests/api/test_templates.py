"""Templates: data checks, rendering errors, policy approval, and sending end to end."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json

import httpx
import pytest

from relay import templates
from relay.api import create_app
from relay.policy import PolicyEngine
from relay.policy.model import PolicyContext
from relay.store import orders
from relay.store.archive import get_record
from tests.api.conftest import MARKET_TOKEN, run_cli
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER, create_order, running_relay

NAMES = {
    "shipping_delay",
    "return_instructions",
    "invoice",
    "delivery_scheduling",
    "product_question_answer",
    "review_request",
}
SAMPLE = {
    "new_date": "2026-12-03",
    "return_deadline": "2026-12-20",
    "invoice_number": "R-1042",
    "delivery_options": "Monday 8-12, Tuesday 13-17",
    "answer": "The jacket is machine washable at 30 degrees.",
}


def _vars(t: templates.Template) -> dict[str, str]:
    return {k: SAMPLE[k] for k in t.variables}


def test_every_template_in_every_language() -> None:
    found = templates.load_all()
    assert set(found) == NAMES
    assert sum("review" in name for name in found) == 1
    for t in found.values():
        assert set(templates.LOCALES) <= set(t.texts), t.name
        for locale in templates.LOCALES:
            lang, subject, body = t.render(locale, ORDER, _vars(t))
            assert lang == locale and ORDER in subject and ORDER in body
            assert "{" not in subject + body


def test_rendering_errors_are_clear() -> None:
    t = templates.get("shipping_delay")
    with pytest.raises(templates.TemplateError, match="needs new_date") as err:
        t.render("en", ORDER, {})
    assert err.value.field == "vars.new_date"
    with pytest.raises(templates.TemplateError, match="no variable 'colour'"):
        t.render("en", ORDER, {"new_date": "x", "colour": "red"})
    with pytest.raises(templates.TemplateError, match="filled in from the order"):
        t.render("en", ORDER, {"new_date": "x", "order_id": "000-0000000-0000000"})
    with pytest.raises(templates.TemplateError, match="line breaks"):
        t.render("en", ORDER, {"new_date": "x\r\nBcc: evil@x.example"})
    with pytest.raises(templates.TemplateError, match="unknown template 'nope'") as err:
        templates.get("nope")
    assert isinstance(err.value, templates.TemplateNotFound)  # the API answers 404
    assert t.render("pt-BR", ORDER, {"new_date": "x"})[0] == "en"  # fallback
    assert t.render("de-AT", ORDER, {"new_date": "x"})[0] == "de"


def test_templates_pass_the_shipped_policy() -> None:
    """Approved means: the default policy delivers every template unchanged."""
    engine = PolicyEngine.load()
    view = orders.OrderView(
        ORDER,
        "open",
        BUYER,
        SELLER,
        "Alice",
        "Shop GmbH",
        "en-US",
        f"b-x@{DOMAIN}",
        f"s-x@{DOMAIN}",
        None,
        None,
        None,
    )  # type: ignore[arg-type]
    for t in templates.load_all().values():
        for locale in templates.LOCALES:
            _, subject, body = t.render(locale, ORDER, _vars(t))
            raw = templates.build_message(view, subject, body, DOMAIN)
            ctx = PolicyContext(
                direction="seller-to-buyer",
                order_id=ORDER,
                buyer_locale=locale,
                days_since_delivery=10,
                relay_domain=DOMAIN,
            )
            verdict = engine.evaluate(raw, ctx)
            assert verdict.action == "deliver", (t.name, locale, verdict.findings)


async def test_template_arrives_in_the_buyers_language(make_settings, sink) -> None:
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        api={"marketplace_tokens": [MARKET_TOKEN]},
    )
    async with running_relay(settings) as relay:
        order = await create_order(
            relay, buyer_locale="de-DE", buyer_name="Alice", seller_name="Shop GmbH"
        )
        app = create_app(settings, relay.engine)
        h = {"Authorization": f"Bearer {MARKET_TOKEN}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as c:
            path = f"/v1/orders/{ORDER}/templates/shipping_delay"
            r = await c.post(path, json={"vars": {}}, headers=h)
            assert r.status_code == 422 and r.json()["error"]["field"] == "vars.new_date"
            r = await c.post(f"/v1/orders/{ORDER}/templates/nope", json={}, headers=h)
            assert r.status_code == 404 and r.json()["error"]["field"] == "template"
            r = await c.post(path, json={"vars": {"new_date": "3. Dezember"}}, headers=h)
            assert r.status_code == 202, r.text
            sent = r.json()
            assert sent["locale"] == "de" and sent["reply"].startswith("250")
            listed = (await c.get("/v1/templates", headers=h)).json()["templates"]
            assert {t["name"] for t in listed} == NAMES
        got = (await sink.wait_for(1))[0]
        assert got.rcpt_tos == [BUYER]
        msg = email.message_from_bytes(got.data, policy=email.policy.default)
        assert msg["From"].addresses[0].addr_spec == order.seller_alias
        assert "Versand verzögert" in str(msg["Subject"])
        assert "3. Dezember" in msg.get_content()
        assert b"shop.example" not in got.data.lower()
        rec = await get_record(relay.engine, sent["archive_ids"][0])
        assert rec["direction"] == "seller-to-buyer" and rec["verdict"] == "deliver"
        assert json.loads(rec["auth"])["method"] == "template"

        # The same from the shell; the running relay's worker delivers it.
        out = await run_cli(
            settings, "template", "send", ORDER, "invoice", "--var", "invoice_number=R-77", "--json"
        )
        assert out.exit_code == 0, out.output
        assert json.loads(out.stdout)["locale"] == "de"
        got = (await sink.wait_for(2))[1]
        assert b"R-77" in got.data
        out = await run_cli(settings, "template", "send", ORDER, "invoice")
        assert out.exit_code != 0 and "needs invoice_number" in out.output
        await orders.set_status(relay.engine, DOMAIN, ORDER, "closed")
        out = await run_cli(settings, "template", "send", ORDER, "review_request")
        assert out.exit_code != 0 and "closed" in out.output
        await asyncio.sleep(0)


async def test_policy_still_applies_to_templates(make_settings, sink) -> None:
    """The review request is the policy's to allow: refused 2 days after delivery (the
    window is 5 to 30 days), delivered at 10, and refused a second time in every language
    when the pipeline counts the first one (see prior_review_requests)."""
    from datetime import timedelta

    from relay.store.tables import utcnow

    settings = make_settings(delivery={"smarthost": f"127.0.0.1:{sink.port}"})
    async with running_relay(settings) as relay:
        await create_order(relay, delivered_at=utcnow() - timedelta(days=2))
        sender = templates.TemplateSender(settings, relay.engine)
        with pytest.raises(templates.TemplateError, match=r"refused: 550 5\.7\.1") as err:
            await sender.send(ORDER, "review_request", {})
        assert isinstance(err.value, templates.TemplateRefused)  # the API answers 422
        other = "113-0000000-0000009"
        await orders.create_order(
            relay.engine,
            DOMAIN,
            other,
            buyer=BUYER,
            seller=SELLER,
            buyer_locale="it-IT",
            delivered_at=utcnow() - timedelta(days=10),
        )
        sent = await sender.send(other, "review_request", {})
        assert sent.reply.startswith("250") and sent.locale == "it"
        await sink.wait_for(1)


def test_review_template_is_recognised_as_a_review_request() -> None:
    """Outside the window the policy refuses it in every language: proof that the policy
    sees each translation as a review request (and so applies its limits)."""
    engine = PolicyEngine.load()
    view = orders.OrderView(
        ORDER,
        "open",
        BUYER,
        SELLER,
        "",
        "",
        "en-US",
        f"b-x@{DOMAIN}",
        f"s-x@{DOMAIN}",
        None,
        None,
        None,
    )  # type: ignore[arg-type]
    t = templates.get("review_request")
    for locale in templates.LOCALES:
        _, subject, body = t.render(locale, ORDER, {})
        raw = templates.build_message(view, subject, body, DOMAIN)
        for days, prior in ((2, 0), (10, 1)):
            ctx = PolicyContext(
                direction="seller-to-buyer",
                order_id=ORDER,
                buyer_locale=locale,
                days_since_delivery=days,
                prior_review_requests=prior,
            )
            assert engine.evaluate(raw, ctx).action == "reject", (locale, days, prior)
