"""Message kinds across the marketplace languages; the rules bind whom they should."""

from __future__ import annotations

import pytest

from tests.policy.helpers import ctx, make


def rejected(v) -> set[str]:
    return {f.kind for f in v.reject_findings}


@pytest.mark.parametrize("locale, subject, body, kind", [
    ("en-US", "Summer sale", "Hi! Use coupon SUMMER20 for 20% off everything in our shop.",
     "promotional"),
    ("de-DE", "Neuheiten", "Hallo, mit dem Gutscheincode HERBST erhalten Sie 15 % Rabatt "
     "auf unsere neue Kollektion.", "promotional"),
    ("en-GB", "Your review", "Hi Sam, if you are happy with the kettle please leave us a "
     "5-star review on the product page.", "review_solicitation"),
    ("fr-FR", "Votre avis", "Bonjour, pourriez-vous supprimer votre avis négatif ? "
     "Nous avons réglé le problème.", "review_solicitation"),
    ("it-IT", "Recensione", "Buongiorno, per una recensione del prodotto le rimborsiamo "
     "10 euro sul suo conto.", "review_incentive"),
    ("nl-NL", "Tweede set", "Hallo, zullen we de volgende bestelling buiten het platform om "
     "regelen? Stuur me een Tikkie.", "off_platform"),
    ("en-US", "[Important] Care tips", "Hello, a few tips: keep the pan dry and oil it "
     "after washing so it lasts for years.", "important_tag_misuse"),
    ("pl-PL", "Dziękujemy!", "Dzień dobry,\nDziękujemy za zakup! W razie pytań prosimy o "
     "kontakt.\nPozdrawiamy,\nSklep", "thank_you_only"),
    ("nl-NL", "Re: spaken", "Hallo Frau Jansen, die Ersatz-Speichen sind ab Montag wieder "
     "vorrätig; wir schicken sie Ihnen dann sofort zu. Viele Grüße", "wrong_language"),
])
def test_message_kinds(engine, locale, subject, body, kind):
    v = engine.evaluate(make(body, subject=subject),
                        ctx(buyer_locale=locale, thread="proactive", days_since_delivery=10))
    assert v.action == "reject", v.findings
    assert kind in rejected(v)
    assert v.reason.startswith("Message refused by rule ")


def test_review_window(engine):
    body = ("Hello, your skillet arrived recently. When you have a moment we would welcome "
            "your honest product review and seller feedback.")
    for days, action in ((2, "reject"), (5, "deliver"), (30, "deliver"), (31, "reject")):
        v = engine.evaluate(make(body), ctx(thread="proactive", days_since_delivery=days))
        assert v.action == action, (days, v.findings)
    v = engine.evaluate(make(body), ctx(thread="proactive", days_since_delivery=10,
                                        prior_review_requests=1))
    assert "review_solicitation" in rejected(v)


def test_buyer_is_not_bound_by_seller_rules(engine):
    body = "Thanks! 👍 Sorry for writing in English, the sale price was great."
    v = engine.evaluate(make(body, subject="[Important] thanks"),
                        ctx("buyer-to-seller", buyer_locale="de-DE"))
    assert v.action == "deliver", v.findings


def test_important_tag_on_critical_message_allowed(engine):
    body = ("Hello Rosa, UPS returned your tent to the depot because the address has no unit "
            "number. Please add the unit number so we can reship it.")
    v = engine.evaluate(make(body, subject="[Important] Unit number needed"),
                        ctx(buyer_locale="en-US", thread="proactive"))
    assert v.action == "deliver", v.findings


def test_quoted_buyer_text_does_not_count(engine):
    body = ("Hallo Herr Weigl,\nDas Ersatzteil ist heute rausgegangen.\nViele Grüße\n\n"
            "On Mon, 2 Jun 2025 at 10:00, Buyer <b-abc@relay.example> wrote:\n"
            "> I will pay by PayPal friends and family if you want.")
    v = engine.evaluate(make(body), ctx(buyer_locale="de-DE"))
    assert v.action == "deliver", v.findings


def test_deceptive_links(engine):
    html = ('<p>Your invoice: <a href="https://invoices-shop.example/dl?o=1">'
            'https://www.amazon.fr/gp/your-account/order-details</a></p>')
    v = engine.evaluate(make("Your invoice is ready in your account.", html),
                        ctx(buyer_locale="en-GB", thread="proactive"))
    assert "deceptive_link" in rejected(v)
    v = engine.evaluate(make("Please pay the fee at https://www.royalrnail.com/pay today."),
                        ctx(thread="proactive"))
    assert "deceptive_link" in rejected(v)
    v = engine.evaluate(make("Track it at https://www.dhl.dе/track today."), ctx())
    assert "deceptive_link" in rejected(v)
    text = "Invoice: https://www.amazon.fr/gp/css/order-history <https://bills.example/dl?o=1>"
    assert "deceptive_link" in rejected(engine.evaluate(make(text), ctx()))
    same = "Tracking: https://www.dhl.de/x?p=1 <https://www.dhl.de/x?p=1>"
    assert engine.evaluate(make(same), ctx()).action == "deliver"


def test_html_only_reply_is_judged_without_the_quote(engine):
    from email.message import EmailMessage
    from email.policy import SMTP

    html = ("<div dir=ltr>Hallo Frau Jansen, die Speichen sind ab Montag wieder vorrätig und "
            "wir schicken sie Ihnen sofort zu.</div><div class=gmail_quote><div class=gmail_attr>"
            "On Mon wrote:</div><blockquote>Kunnen jullie de spaken nabestellen? Ik wil er graag "
            "tien hebben voor mijn fiets, alvast bedankt.</blockquote></div>")
    m = EmailMessage()
    m["Subject"] = "Re: spaken"
    m.set_content(html, subtype="html")
    raw = m.as_bytes(policy=SMTP)
    assert engine.evaluate(raw, ctx(buyer_locale="de-DE")).action == "deliver"
    assert "wrong_language" in rejected(engine.evaluate(raw, ctx(buyer_locale="nl-NL")))


def test_forwarded_message_is_not_the_writers_words(engine):
    from email.message import EmailMessage
    from email.policy import SMTP

    inner = EmailMessage()
    inner["Subject"] = "Summer sale"
    inner.set_content("Use coupon SUMMER20 for 20% off everything in our shop this week!")
    outer = EmailMessage()
    outer["Subject"] = "Fwd: sale"
    outer.set_content("Hello, the manufacturer wrote to us, see the attached note. Regards")
    outer.add_attachment(inner)
    v = engine.evaluate(outer.as_bytes(policy=SMTP), ctx(buyer_locale="en-GB"))
    assert "promotional" not in rejected(v)


@pytest.mark.parametrize("locale, body", [
    ("es-ES", "Hola Lucía:\n¿Ha llegado bien tu pedido? Si hay cualquier problema con el set, "
              "cuéntanos.\nCasa Oliva"),
    ("en-GB", "Hi Oliver,\nIf there is any problem with your harness, just let us know.\n"
              "Best wishes,\nPemberton"),
])
def test_contact_us_only_is_thank_you_only(engine, locale, body):
    v = engine.evaluate(make(body), ctx(buyer_locale=locale, thread="proactive"))
    assert "thank_you_only" in rejected(v)


def test_answer_with_contact_offer_is_fine(engine):
    body = ("Hi Oliver,\nYes, the harness is machine washable at 30 °C. Let us know if you have "
            "any other questions.\nBest,\nPemberton")
    assert engine.evaluate(make(body), ctx(thread="reply")).action == "deliver"
