"""Write the policy's own labelled cases (OWN-NNN.eml + labels.json), deterministically.

    .venv/bin/python tests/policy/cases/make_cases.py

These are written for issue 12 from the spec's definitions, not from the development set
in ../shared/policy-cases (never read here): message kinds by meaning in several
languages, contact details in every form, attachment types, and verdicts the policy must
answer with ``hold``. Same format as the development set (policy-spec.md).
"""

from __future__ import annotations

import io
import json
import pathlib
import zipfile
from email.message import EmailMessage
from email.policy import SMTP

HERE = pathlib.Path(__file__).resolve().parent
ORDER = "302-5518204-7719350"
S2B, B2S = "seller-to-buyer", "buyer-to-seller"


def ctx(direction=S2B, locale="en-GB", thread="reply", prior=0, days=None):
    return {"direction": direction, "order_id": ORDER, "buyer_locale": locale,
            "thread": thread, "prior_review_requests": prior, "days_since_delivery": days}


def exp(action, redact=(), reject=(), gone=(), keep=(), hold_ok=False):
    e = {"action": action, "redact": list(redact), "reject": list(reject),
         "must_not_survive": list(gone), "must_survive": list(keep)}
    if hold_ok:
        e["hold_ok"] = True
    return e


def mail(text, subject="Re: your order", html=None, atts=(), direction=S2B):
    m = EmailMessage()
    if direction == S2B:
        m["From"] = "Lindenhof Shop <service@lindenhof.example>"
        m["To"] = "b-q7w2e9r4@relay.example"
    else:
        m["From"] = "Kim Berger <kim.berger@mailbox.example>"
        m["To"] = "s-h3j8k2l5@relay.example"
    m["Subject"] = subject
    m["Message-ID"] = f"<{abs(hash(subject + text)) % 10**12}@x.example>"
    m.set_content(text)
    if html is not None:
        m.add_alternative(html, subtype="html")
    for data, maintype, subtype, name in atts:
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return m.as_bytes(policy=SMTP)


def _zip(members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for n, d in members.items():
            zf.writestr(n, d)
    return buf.getvalue()


def _pdf(text: str) -> bytes:
    """A one-page PDF whose text pypdf can extract (Helvetica, one text line per line)."""
    lines = text.split("\n")
    ops = "BT /F1 12 Tf 50 750 Td 14 TL " + " ".join(
        "(" + ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
        for ln in lines) + " ET"
    objs = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(ops)} >>\nstream\n{ops}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    out = b"%PDF-1.4\n"
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    for o in offs:
        out += f"{o:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def _docx(text: str) -> bytes:
    body = "".join(f"<w:p><w:r><w:t>{ln}</w:t></w:r></w:p>" for ln in text.split("\n"))
    return _zip({
        "[Content_Types].xml": '<?xml version="1.0"?><Types xmlns="http://schemas.'
        'openxmlformats.org/package/2006/content-types"/>',
        "word/document.xml": '<?xml version="1.0"?><w:document xmlns:w="http://schemas.'
        'openxmlformats.org/wordprocessingml/2006/main"><w:body>' + body
        + "</w:body></w:document>",
    })


def _png_text(text: str, size=(900, 120)) -> bytes:
    from PIL import Image, ImageDraw, ImageFont

    im = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(im)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 36)
    except OSError:
        font = ImageFont.load_default(size=36)
    d.text((20, 35), text, fill="black", font=font)
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _png_photo() -> bytes:
    """A smooth gradient with a shape: what a photo of a scratch looks like to OCR."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (320, 240))
    im.putdata([(x % 256, (x + y) % 256, 180) for y in range(240) for x in range(320)])
    ImageDraw.Draw(im).ellipse((100, 80, 220, 160), fill=(90, 60, 40))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def _png_blurred(text: str) -> bytes:
    """Text that is clearly there but too blurred to read (a shaky phone photo of a note)."""
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    im = Image.new("RGB", (700, 140), "white")
    d = ImageDraw.Draw(im)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", 16)
    except OSError:
        font = ImageFont.load_default(size=16)
    d.text((10, 10), text, fill="black", font=font)
    im = im.filter(ImageFilter.GaussianBlur(2.0))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


CASES: list[tuple[str, bytes, dict, dict]] = []


def add(notes, raw, context, expected):
    CASES.append((notes, raw, context, expected))


# ---- thank_you_only -------------------------------------------------------------------
add("en thank-you with an open offer of help",
    mail("Hi Paula,\n\nThank you so much for choosing us! Should you ever need anything at "
         "all, we're just a message away.\n\nWarm regards,\nLindenhof", "Thank you!"),
    ctx(thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("en courtesy answer to a buyer's thanks",
    mail("Hi Paula,\n\nYou're very welcome! Glad to hear it arrived safely. Anytime you need "
         "us, we're here.\n\nBest,\nTom"), ctx(), exp("reject", reject=["thank_you_only"]))
add("de courtesy answer to thanks",
    mail("Hallo Frau Berger,\n\ngern geschehen! Es freut uns, dass alles gut angekommen "
         "ist. Wir sind jederzeit für Sie da.\n\nViele Grüße\nIhr Lindenhof-Team"),
    ctx(locale="de-DE"), exp("reject", reject=["thank_you_only"]))
add("es thank-you only",
    mail("Hola Marta,\n\n¡Muchas gracias por su compra! Si tiene cualquier duda, estamos a "
         "su disposición.\n\nUn saludo,\nLindenhof", "Gracias"),
    ctx(locale="es-ES", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("it thanks again only",
    mail("Gentile Luca,\n\ngrazie ancora per il suo acquisto! È stato un piacere.\n\n"
         "Cordiali saluti,\nLindenhof", "Grazie"),
    ctx(locale="it-IT", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("nl courtesy: graag gedaan",
    mail("Hallo Sanne,\n\nGraag gedaan! Fijn om te horen dat je tevreden bent. Als er iets "
         "is, laat het ons gerust weten.\n\nGroet,\nLindenhof"),
    ctx(locale="nl-NL"), exp("reject", reject=["thank_you_only"]))
add("en courtesy with real information: delivered",
    mail("Hi Paula,\n\nYou're welcome! The spare filter you asked about fits the model "
         "LX-200 too; it is the one with the blue ring.\n\nBest,\nTom"),
    ctx(), exp("deliver"))
add("fr thanks plus an answer: delivered",
    mail("Bonjour Claire,\n\nMerci pour votre message. La housse se lave à 30 °C, sans "
         "adoucissant, et sèche à plat.\n\nCordialement,\nLindenhof"),
    ctx(locale="fr-FR"), exp("deliver"))

# ---- review_solicitation --------------------------------------------------------------
add("en gating without a review keyword",
    mail("Hi Paula,\n\nWe hope the lamp brightens your evenings. If you're happy with it, "
         "the product page is where other buyers look for experiences like yours. If not, "
         "please write to us first so we can make it right.\n\nLindenhof", "Your lamp"),
    ctx(thread="proactive", days=10), exp("reject", reject=["review_solicitation"]))
add("de gating: happy ones to the review page",
    mail("Hallo Frau Berger,\n\nwenn Sie zufrieden sind, freuen wir uns über ein paar "
         "Worte auf der Produktseite. Falls nicht, melden Sie sich bitte zuerst bei uns.\n\n"
         "Viele Grüße", "Ihre Bestellung"),
    ctx(locale="de-DE", thread="proactive", days=8), exp("reject", reject=["review_solicitation"]))
add("es asks only satisfied buyers",
    mail("Hola Marta,\n\nsi ha quedado satisfecha con la cafetera, le agradeceríamos que "
         "compartiera su experiencia con otros compradores.\n\nSaludos", "Su cafetera"),
    ctx(locale="es-ES", thread="proactive", days=12), exp("reject", reject=["review_solicitation"]))
add("it asks to change the rating, coupled with a refund",
    mail("Gentile Luca,\n\nle rimborseremo l'intero importo. Una volta ricevuto il "
         "rimborso, potrebbe modificare la sua valutazione di una stella?\n\nCordiali saluti"),
    ctx(locale="it-IT"), exp("reject", reject=["review_solicitation", "review_incentive"]))
add("pl asks to remove a review",
    mail("Dzień dobry,\n\nczy mógłby Pan usunąć swoją opinię? Wymienimy produkt na nowy.\n\n"
         "Pozdrawiamy"), ctx(locale="pl-PL"), exp("reject", reject=["review_solicitation"]))
add("nl repeat review request",
    mail("Hallo Sanne,\n\nwe zouden het waarderen als je een beoordeling achterlaat over je "
         "aankoop.\n\nGroet", "Je mening"),
    ctx(locale="nl-NL", thread="proactive", prior=1, days=15),
    exp("reject", reject=["review_solicitation"]))
add("ja gating: only satisfied buyers",
    mail("ご購入ありがとうございます。\n商品にご満足いただけましたら、商品ページに星5つの評価を"
         "お願いします。\n", "ご購入のお礼"),
    ctx(locale="ja-JP", thread="proactive", days=9), exp("reject", reject=["review_solicitation"]))
add("en neutral request on day 12: delivered",
    mail("Hi Paula,\n\nNow that you have had the kettle for a while, you may leave a review "
         "of your purchase on the marketplace if you wish.\n\nLindenhof", "Your kettle"),
    ctx(thread="proactive", days=12), exp("deliver"))
add("fr neutral request on day 20: delivered",
    mail("Bonjour Claire,\n\nSi vous le souhaitez, vous pouvez laisser votre avis sur votre "
         "achat.\n\nCordialement", "Votre achat"),
    ctx(locale="fr-FR", thread="proactive", days=20), exp("deliver"))

# ---- review_incentive -----------------------------------------------------------------
add("en gift card for a review",
    mail("Hi Paula,\n\nWrite a review of the blender and we will send you a 10 GBP gift "
         "card as a thank-you.\n\nLindenhof", "A little gift"),
    ctx(thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
add("de free product for a rating",
    mail("Hallo,\n\nfür Ihre Bewertung schicken wir Ihnen gratis einen zweiten "
         "Filter.\n\nGrüße", "Geschenk"),
    ctx(locale="de-DE", thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
add("es refund in exchange for a review",
    mail("Hola Marta,\n\nle devolvemos 5 euros a cambio de una reseña del producto.\n\n"
         "Saludos", "Reembolso"),
    ctx(locale="es-ES", thread="proactive", days=10), exp("reject", reject=["review_incentive"]))

# ---- promotional -----------------------------------------------------------------------
add("en upsell inside a legitimate answer",
    mail("Hi Paula,\n\nThe replacement lid ships tomorrow with tracking.\n\nBy the way, our "
         "new ceramic range has just launched and might interest you: take a look at our "
         "other products.\n\nTom"), ctx(), exp("reject", reject=["promotional"]))
add("de discount on the next order",
    mail("Hallo Frau Berger,\n\nder Ersatzdeckel ist unterwegs. Bei Ihrer nächsten "
         "Bestellung erhalten Sie 15 % Rabatt.\n\nGrüße"),
    ctx(locale="de-DE"), exp("reject", reject=["promotional"]))
add("fr discover our collection",
    mail("Bonjour Claire,\n\nVotre colis est bien parti. Découvrez aussi notre nouvelle "
         "collection de linge de maison, disponible dès maintenant.\n\nCordialement"),
    ctx(locale="fr-FR"), exp("reject", reject=["promotional"]))
add("it may also interest you",
    mail("Gentile Luca,\n\nil ricambio è partito oggi. Potrebbe interessarle anche il "
         "nostro nuovo macinino, in offerta fino ad esaurimento scorte.\n\nSaluti"),
    ctx(locale="it-IT"), exp("reject", reject=["promotional"]))
add("pl new arrivals",
    mail("Dzień dobry,\n\npaczka została nadana. Zapraszamy do zapoznania się z naszą "
         "nową kolekcją w sklepie.\n\nPozdrawiamy"),
    ctx(locale="pl-PL"), exp("reject", reject=["promotional"]))

# ---- off_platform ----------------------------------------------------------------------
add("en seller: order directly from our website",
    mail("Hi Paula,\n\nThe blue version is out of stock here, but you can order it from our "
         "own website, it's cheaper there too.\n\nTom"),
    ctx(), exp("reject", reject=["off_platform"]))
add("de buyer: pay by bank transfer",
    mail("Hallo,\n\nkönnen wir den zweiten Stuhl per Überweisung direkt abwickeln? Dann "
         "sparen wir beide die Gebühren.\n\nKim", direction=B2S),
    ctx(B2S, locale="de-DE", thread="proactive"), exp("reject", reject=["off_platform"]))
add("es seller: pay with Bizum",
    mail("Hola Marta,\n\nsi quiere el segundo juego, puede pagarlo por Bizum y se lo "
         "envío mañana.\n\nSaludos"),
    ctx(locale="es-ES"), exp("reject", reject=["off_platform"]))
add("fr buyer: continue outside the platform",
    mail("Bonjour,\n\nje préfère commander la suite hors de la plateforme, vous acceptez "
         "un virement ?\n\nClaire", direction=B2S),
    ctx(B2S, locale="fr-FR", thread="proactive"), exp("reject", reject=["off_platform"]))

# ---- contact details -------------------------------------------------------------------
add("en spelled-out address",
    mail("Hi Paula,\n\nfor the invoice just mail tom.berg at gmail dot com.\n\nTom"),
    ctx(), exp("redact", redact=["email_address"], gone=["tom.berg at gmail dot com"]))
add("de address in hidden HTML",
    mail("Hallo, Ihr Paket ist unterwegs.", html="<p>Hallo, Ihr Paket ist unterwegs.</p>"
         "<p style=\"display:none\">kontakt: tom.lindenhof@web.de</p>"),
    ctx(locale="de-DE"),
    exp("redact", redact=["email_address", "hidden_content"], gone=["tom.lindenhof@web.de"]))
add("es phone split across HTML cells",
    mail("Hola, le llamo mañana.", html="<table><tr><td>Mi móvil: 612 34</td><td>56 78"
         "</td></tr></table>"),
    ctx(locale="es-ES"), exp("redact", redact=["phone_number"], gone=["56 78"]))
add("en bare domain under a new TLD",
    mail("Hi Paula,\n\nthe manual is also on lindenhof-home.shop if you need it.\n\nTom"),
    ctx(), exp("redact", redact=["external_link"], gone=["lindenhof-home.shop"]))
add("it chiocciola address",
    mail("Gentile Luca,\n\nscriva pure a marco.rossi chiocciola libero punto it.\n\nSaluti"),
    ctx(locale="it-IT"), exp("redact", redact=["email_address"],
                             gone=["marco.rossi chiocciola libero punto it"]))
add("en precision trap: files, versions, abbreviations",
    mail("Hi Paula,\n\nFirmware 2.4.13 fixes it; e.g. reset first. Open readme.txt, "
         "i.e. the file in the box. Order 302-5518204-7719350, 3.5 kg, 12.5 x 30 cm.\n\nTom"),
    ctx(), exp("deliver", keep=["2.4.13", "readme.txt"]))

# ---- attachments -----------------------------------------------------------------------
add("en RAR archive removed",
    mail("Hi, the photos are attached.", atts=[(b"Rar!\x1a\x07\x01\x00" + b"\x00" * 300,
                                                 "application", "vnd.rar", "photos.rar")]),
    ctx(), exp("redact", redact=["attachment_removed"]))
add("de macro-enabled document refused",
    mail("Hallo, anbei die Anleitung.", atts=[(_zip({"[Content_Types].xml": "<Types/>",
                                                       "word/document.xml": "<d/>",
                                                       "word/vbaProject.bin": "x"}),
                                                 "application", "octet-stream",
                                                 "anleitung.docx")]),
    ctx(B2S, locale="de-DE"), exp("reject", reject=["dangerous_attachment"]))
add("en HTML attachment with a login form refused",
    mail("Please confirm your payment details.",
         atts=[(b'<html><body><form action="https://pay.example/x"><input name=card>'
                b'</form></body></html>', "text", "html", "payment.html")]),
    ctx(), exp("reject", reject=["dangerous_attachment"]))
add("en PDF whose text is an upsell",
    mail("Hi Paula,\n\nthe care guide is attached.\n\nTom",
         atts=[(_pdf("Care guide\nWash at 30 degrees.\nUse code SPRING25 for 25% off your "
                     "next order in our shop!"), "application", "pdf", "care.pdf")]),
    ctx(), exp("reject", reject=["promotional"]))
add("en DOCX whose text carries a phone number",
    mail("Hi Paula,\n\nthe assembly notes are attached.\n\nTom",
         atts=[(_docx("Assembly notes\nCall me on 07700 900461 if a screw is missing."),
                "application", "vnd.openxmlformats-officedocument.wordprocessingml.document",
                "notes.docx")]),
    ctx(), exp("redact", redact=["phone_number"], gone=["07700 900461"]))
add("en image whose text carries an address (OCR)",
    mail("Hi Paula,\n\nsee the picture.\n\nTom",
         atts=[(_png_text("Mail me: tom.berg77@gmail.com"), "image", "png", "note.png")]),
    ctx(), exp("redact", redact=["email_address"], gone=["tom.berg77@gmail.com"]))
add("en PDF manual delivered",
    mail("Hi Paula,\n\nthe manual is attached.\n\nTom",
         atts=[(_pdf("Manual\nStep 1: unpack the lamp.\nStep 2: insert the bulb."),
                "application", "pdf", "manual.pdf")]),
    ctx(), exp("deliver"))

# ---- hold ------------------------------------------------------------------------------
add("image with text the policy cannot read: hold",
    mail("Hi Paula,\n\nsee the attached picture for the details.\n\nTom",
         atts=[(_png_blurred("Please call our office tomorrow about the\nspare parts and the "
                             "delivery address\nfor your order number today"),
                "image", "png", "details.png")]),
    ctx(), exp("hold"))
add("seller text in a language the policy cannot identify: hold",
    mail("Xq zrvv plk tmmr, qwv zzkp lorr vtnn mkkq prr, brx vollq ztt sne gharr. "
         "Vrokk tzam plirr, quvv nesk drallo. Zymm krett voll.\n\nTom",
         "Re: order"),
    ctx(locale="de-DE"), exp("hold"))
add("de buyer photo without text: delivered (a photo is not unreadable text)",
    mail("Hallo,\n\nanbei ein Foto vom Kratzer.\n\nKim", direction=B2S,
         atts=[(_png_photo(), "image", "png", "kratzer.png")]),
    ctx(B2S, locale="de-DE"), exp("deliver"))
add("es image whose text is an off-platform payment request: reject (or hold)",
    mail("Hola Marta,\n\nle mando los datos en la imagen.\n\nSaludos",
         atts=[(_png_text("Pague por Bizum al 612 345 678"), "image", "png", "datos.png")]),
    ctx(locale="es-ES"), exp("reject", reject=["off_platform"], hold_ok=True))


def main() -> None:
    labels = []
    for i, (notes, raw, context, expected) in enumerate(CASES, 1):
        cid = f"OWN-{i:03d}"
        (HERE / f"{cid}.eml").write_bytes(raw)
        labels.append({"id": cid, "file": f"{cid}.eml", "context": context,
                       "expected": expected, "notes": notes})
    (HERE / "labels.json").write_text(json.dumps(labels, indent=1, ensure_ascii=False) + "\n",
                                      encoding="utf-8")
    print(f"{len(labels)} cases written to {HERE}")


if __name__ == "__main__":
    main()
