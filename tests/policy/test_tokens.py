"""Contact details, links, handles and emoji: found, redacted, and gone from the output."""

from __future__ import annotations

import pytest

from relay.policy.evaluation import decoded_text
from tests.policy.helpers import ctx, make


def kinds(verdict, action: str = "redact") -> set[str]:
    return {f.kind for f in verdict.findings if f.action == action}


def assert_gone(verdict, *tokens: str) -> None:
    assert verdict.message is not None
    text = decoded_text(verdict.message)
    for t in tokens:
        assert t not in text, t
        assert t.encode() not in verdict.message, t


@pytest.mark.parametrize("body, token", [
    ("Write to me at jane.doe@example.org please.", "jane.doe@example.org"),
    ("Write to jane.doe [at] example [dot] org please.", "jane.doe [at] example [dot] org"),
    ("Write to jane.doe(at)example(dot)org please.", "jane.doe(at)example(dot)org"),
    ("Mail: jane\u200b.doe@exam\u200bple.org thanks", "jane\u200b.doe@exam\u200bple.org"),
    ("Mail: jane.doe＠example．org thanks", "jane.doe＠example．org"),
])
def test_email_forms_are_redacted(engine, body, token):
    v = engine.evaluate(make(body + "\n\nRegards, the shop team"), ctx())
    assert v.action == "redact"
    assert "email_address" in kinds(v)
    assert_gone(v, token)
    assert "[email address removed]" in decoded_text(v.message)


def test_relay_alias_and_content_id_are_not_addresses(engine):
    body = ("On Mon, Shop <s-k2j4h5g6@relay.example> wrote:\n> hello\n"
            "[cid:image001.png@01DBCF8A.5E2A9C40]")
    v = engine.evaluate(make(body), ctx("buyer-to-seller"))
    assert v.action == "deliver"


@pytest.mark.parametrize("locale, body, token", [
    ("en-US", "Call my cell (312) 555-0187 any time.", "(312) 555-0187"),
    ("en-GB", "Ring me on 020 7946 0321 tonight.", "020 7946 0321"),
    ("de-DE", "Rufen Sie mich an: 0151 23456789.", "0151 23456789"),
    ("fr-FR", "Appelez-moi au 06 39 98 21 47.", "06 39 98 21 47"),
    ("es-ES", "Mi móvil es 612 34 56 78.", "612 34 56 78"),
    ("it-IT", "Il mio cellulare è 347 123 4567.", "347 123 4567"),
    ("nl-NL", "Bel me op 06 12345678.", "06 12345678"),
    ("pl-PL", "Mój numer: 512 345 678.", "512 345 678"),
    ("en-GB", "WhatsApp me: +44 7700 900123", "+44 7700 900123"),
    ("de-DE", "Handy: null-eins-fünf-eins 234 567 89", "null-eins-fünf-eins 234 567 89"),
    ("en-US", "Call me: (312) 555\u2060-\u20600187", "(312) 555\u2060-\u20600187"),
    ("en-GB", "Call me regarding the order: 0161 496 0000", "0161 496 0000"),
    ("de-DE", "Für Rückfragen zur Sendung: 0151 2345678", "0151 2345678"),
])
def test_phone_numbers_are_redacted(engine, locale, body, token):
    v = engine.evaluate(make(body), ctx("buyer-to-seller", buyer_locale=locale))
    assert "phone_number" in kinds(v), v.findings
    assert_gone(v, token)


@pytest.mark.parametrize("body", [
    "Order 204-3817265-4409183 shipped on 11/03/2025 at 08:42, tracking QB 1754 3298 6GB.",
    "You paid £64.00 including £10.67 VAT; it is 102 cm long and weighs 6,8 kg.",
    "Sendungsnummer 00340434292135100186, Rechnungsbetrag 129,95 € inkl. 19 % MwSt.",
    "P.IVA 04718230487, fattura n. 2025/0412, importo 159,00 €.",
    "NIP 5272845113, kwota 189,99 zł brutto, 12.05.2025 r.",
    "Licence key: SKY7-QX4M-82KD-9TPL-3WN6, Activation ID: 4471 2290 8813.",
    "UPS 1Z 9F4 W71 03 6690 2318, ASIN B0D7K2MZ4Q, S/N BA40-2291-0457-C.",
    "UID-Nr. ATU68791234, EUR 649,00, 504 Wh, KW 24.",
    "Der Schlauch 28 Zoll (28/47-622) passt, Kassette 10-51 Z., Modell 2019-2024.",
    "Tracking 7712 3456 7890 via FedEx, ISBN 978-3-16-148410-0, EAN 4006381333931.",
])
def test_numbers_that_are_not_phones(engine, body):
    v = engine.evaluate(make(body), ctx("buyer-to-seller"))
    assert "phone_number" not in kinds(v), v.findings
    assert v.action == "deliver"


def test_service_line_allowed_but_personal_cell_redacted(engine):
    body = ("Skylark's warranty service line is 1-866-555-0142 (Mon-Fri). "
            "If you'd rather talk to me first, my cell is (312) 555-0187.")
    v = engine.evaluate(make(body), ctx(buyer_locale="en-US"))
    allowed = [f for f in v.findings if f.kind == "phone_number" and f.action == "allow"]
    assert allowed and "1-866-555-0142" in allowed[0].excerpt
    text = decoded_text(v.message)
    assert "1-866-555-0142" in text and "555-0187" not in text


def test_phone_split_across_html_tags(engine):
    html = "<p>Call me: <span>0151</span><b> 2345</b><i>6789</i></p>"
    v = engine.evaluate(make("Hello", html), ctx("buyer-to-seller", buyer_locale="de-DE"))
    assert "phone_number" in kinds(v)
    assert_gone(v, "23456789")


def test_tel_and_mailto_targets(engine):
    html = ('<p>Contact: <a href="tel:+31307992741">call us</a> or '
            '<a href="mailto:info@shop.example">write us</a>.</p>')
    v = engine.evaluate(make("Hello there, see the details.", html), ctx())
    assert {"phone_number", "email_address"} <= kinds(v)
    assert_gone(v, "+31307992741", "info@shop.example")


@pytest.mark.parametrize("url, kind", [
    ("https://wa.me/34612908374", "messaging_app_link"),
    ("https://t.me/shopchannel", "messaging_app_link"),
    ("https://www.instagram.com/shop.handle/", "social_handle"),
    ("https://bit.ly/3xYz", "external_link"),
    ("http://www.amazon.de/gp/css/returns", "external_link"),
    ("https://shop-own-site.example.com/page", "external_link"),
])
def test_link_kinds(engine, url, kind):
    v = engine.evaluate(make(f"Details here: {url} - best regards"), ctx())
    assert kind in kinds(v), v.findings
    assert_gone(v, url)


@pytest.mark.parametrize("url", [
    "https://www.amazon.de/gp/css/order-history",
    "https://www.royalmail.com/track-your-item#/tracking-results/QB175432986GB",
    "https://proofs.printshop.example/design?order=204-3817265-4409183",
])
def test_links_needed_for_the_order_are_allowed(engine, url):
    v = engine.evaluate(make(f"Please see {url} for details."), ctx())
    assert v.action == "deliver", v.findings
    assert url in decoded_text(v.message)


def test_messaging_ids_without_links(engine):
    v = engine.evaluate(make("It's easier on Signal, my username is hannah.knits.42 thanks"),
                        ctx("buyer-to-seller"))
    assert "messaging_app_link" in kinds(v)
    assert_gone(v, "hannah.knits.42")


def test_emoji_seller_only(engine):
    body = "Thanks for waiting 🙂 the part 1️⃣ ships today ❤️ Montes Pro® © Shop ™ ▲"
    v = engine.evaluate(make(body), ctx())
    assert "emoji" in kinds(v)
    text = decoded_text(v.message)
    for gone in ("🙂", "1️⃣", "❤️"):
        assert gone not in text
    for kept in ("®", "©", "™", "▲"):
        assert kept in text
    assert engine.evaluate(make(body), ctx("buyer-to-seller")).action == "deliver"


def test_subject_encoded_word_address(engine):
    raw = make("Clean body, your ring will be resized.",
               subject="Re: write to sav.atelier@orange.fr")
    v = engine.evaluate(raw, ctx(buyer_locale="en-GB"))
    assert any(f.where == "subject" and f.kind == "email_address" for f in v.findings)
    assert_gone(v, "sav.atelier@orange.fr")


def test_outlook_safe_links_are_judged_by_their_target(engine):
    safe = ("https://eur01.safelinks.protection.outlook.com/?url=https%3A%2F%2Fwww.dhl.de"
            "%2Fde%2Fverfolgen%3Fpiececode%3D1&data=05")
    html = f'<p>Tracking: <a href="{safe}">https://www.dhl.de/de/verfolgen?piececode=1</a></p>'
    v = engine.evaluate(make("Tracking: https://www.dhl.de/de/verfolgen?piececode=1", html),
                        ctx(buyer_locale="de-DE"))
    assert v.action == "deliver", v.findings
    evil = safe.replace("www.dhl.de", "evil.example")
    v = engine.evaluate(make("Tracking below", f'<a href="{evil}">Track</a>'), ctx())
    assert "external_link" in kinds(v)


@pytest.mark.parametrize("locale, body, allowed", [
    ("en-US", "Call UPS at 1-800-742-5877 if the driver misses you.", True),
    ("en-GB", "Questions about the DHL parcel: 0161 496 0000", False),
    ("en-GB", "Our customer service line is 0161 496 0000.", False),
    ("de-DE", "Unsere Hotline: 0151 23456789", False),
    ("de-DE", "Die Hotline des Herstellers: 0800 123 4567", True),
    ("it-IT", "Il produttore mette a disposizione il numero verde 800 917 462.", True),
])
def test_third_party_service_lines_only(engine, locale, body, allowed):
    v = engine.evaluate(make(body), ctx(buyer_locale=locale))
    phones = [f for f in v.findings if f.kind == "phone_number"]
    assert phones and all((f.action == "allow") == allowed for f in phones), v.findings


def test_plain_at_needs_a_mailbox_like_local_part(engine):
    v = engine.evaluate(make("Please have a look at amazon.de for the order status."),
                        ctx("buyer-to-seller"))
    assert "email_address" not in kinds(v)
    v = engine.evaluate(make("Write to jane.doe at gmail.com please"), ctx("buyer-to-seller"))
    assert "email_address" in kinds(v)


def test_social_handle_after_is(engine):
    v = engine.evaluate(make("My insta is piotr.zielinski_ogrod, see the video there"),
                        ctx("buyer-to-seller"))
    assert "social_handle" in kinds(v)
    assert_gone(v, "piotr.zielinski_ogrod")
