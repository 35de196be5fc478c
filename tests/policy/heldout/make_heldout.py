# ruff: noqa: E501  (message texts are data: kept on the lines they were written on)
"""Write the held-out policy cases (HO-NNN.eml + labels.json), deterministically.

    .venv/bin/python tests/policy/heldout/make_heldout.py

Written for issue 12 by a helper who wrote none of the rules, before reading the word
lists, the way buyers and sellers actually write: all eight shipped languages, every
message kind by meaning (not by keyword), contact details in every form, and many
legitimate messages full of numbers that must be delivered untouched. Same format as the
development set (policy-spec.md). Never tune a word list on one of these phrases: the set
is only worth something while it stands for mail the rules have not seen.
"""

from __future__ import annotations

import hashlib
import html as _html
import io
import json
import pathlib
from email.message import EmailMessage
from email.policy import SMTP

HERE = pathlib.Path(__file__).resolve().parent
S2B, B2S = "seller-to-buyer", "buyer-to-seller"
_ORDERS = ["028-4471923-5530817", "171-9038265-2246109", "305-6620471-8813924",
           "249-1187350-6604412", "402-7759013-3381627", "503-2290846-1175530"]

SHOPS = {
    "en": ("Brightwater Home <orders@brightwater-home.example>", "Nora Quinn <nora.q@post.example>"),
    "de": ("Holzmann Werkstatt <service@holzmann-werkstatt.example>", "Jonas Keller <j.keller@netz.example>"),
    "fr": ("Maison Perrin <contact@maison-perrin.example>", "Camille Roux <camille.roux@courrier.example>"),
    "es": ("Tienda Alba <pedidos@tienda-alba.example>", "Lucía Romero <lucia.r@correo.example>"),
    "it": ("Ceramiche Blu <ordini@ceramicheblu.example>", "Marco Bellini <m.bellini@posta.example>"),
    "ja": ("くも雑貨店 <info@kumo-zakka.example>", "佐藤 健 <k.sato@mail.example>"),
    "pl": ("Sklep Lipa <sklep@lipa-dom.example>", "Tomasz Nowak <t.nowak@poczta.example>"),
    "nl": ("FietsFix <hallo@fietsfix.example>", "Bram de Vries <bram.dv@mail.example>"),
}
LOCALE = {"en": "en-GB", "de": "de-DE", "fr": "fr-FR", "es": "es-ES", "it": "it-IT",
          "ja": "ja-JP", "pl": "pl-PL", "nl": "nl-NL"}


def ctx(lang="en", direction=S2B, thread="reply", prior=0, days=None, locale=None, n=0):
    return {"direction": direction, "order_id": _ORDERS[n % len(_ORDERS)],
            "buyer_locale": locale or LOCALE[lang], "thread": thread,
            "prior_review_requests": prior, "days_since_delivery": days}


def exp(action, redact=(), reject=(), gone=(), keep=(), hold_ok=False):
    e = {"action": action, "redact": list(redact), "reject": list(reject),
         "must_not_survive": list(gone), "must_survive": list(keep)}
    if hold_ok:
        e["hold_ok"] = True
    return e


def gmail_html(text: str) -> str:
    paras = text.strip("\n").split("\n\n")
    body = "".join("<div>" + "<br>".join(_html.escape(ln) for ln in p.split("\n"))
                   + "</div><div><br></div>" for p in paras)
    return f'<div dir="ltr">{body}</div>\n'


def outlook_html(text: str) -> str:
    lines = text.strip("\n").split("\n")
    ps = "".join(f'<p class="MsoNormal">{_html.escape(ln) if ln else "<o:p>&nbsp;</o:p>"}'
                 "<o:p></o:p></p>\n" for ln in lines)
    return ('<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-'
            'com:office:office" xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m='
            '"http://schemas.microsoft.com/office/2004/12/omml" xmlns="http://www.w3.org/TR/'
            'REC-html40"><head><meta http-equiv="Content-Type" content="text/html; charset='
            'utf-8"><meta name="Generator" content="Microsoft Word 15 (filtered medium)">'
            '<style><!-- p.MsoNormal {margin:0cm; font-size:11.0pt; font-family:"Calibri",'
            'sans-serif;} --></style></head><body lang="DE" link="#0563C1" vlink="#954F72">'
            f'<div class="WordSection1">\n{ps}</div></body></html>\n')


def mail(text, subject, lang="en", direction=S2B, html=None, fmt="text", atts=(),
         html_only=False, quote=None):
    """An RFC 5322 message; ``fmt`` 'gmail'/'outlook' adds the HTML a client would send."""
    m = EmailMessage()
    seller, buyer = SHOPS[lang]
    if direction == S2B:
        m["From"], m["To"] = seller, "b-" + hashlib.sha1(subject.encode()).hexdigest()[:8] + "@relay.example"
    else:
        m["From"], m["To"] = buyer, "s-" + hashlib.sha1(subject.encode()).hexdigest()[:8] + "@relay.example"
    m["Subject"] = subject
    m["Date"] = "Tue, 10 Jun 2025 09:41:00 +0200"
    digest = hashlib.sha1((subject + text).encode()).hexdigest()[:16]
    m["Message-ID"] = f"<{digest}@mail.example>"
    if subject.lower().startswith(("re:", "aw:", "antw:", "odp:", "r:")):
        m["In-Reply-To"] = f"<{digest[::-1]}@relay.example>"
        m["References"] = m["In-Reply-To"]
    if quote:
        text = text + "\n\n" + quote[0] + "\n" + "\n".join("> " + ln for ln in quote[1].split("\n"))
    if html is None and fmt == "gmail":
        html = gmail_html(text)
    elif html is None and fmt == "outlook":
        html = outlook_html(text)
    if html_only:
        m.set_content(html, subtype="html")
    else:
        m.set_content(text)
        if html is not None:
            m.add_alternative(html, subtype="html")
    for data, maintype, subtype, name in atts:
        m.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    for i, part in enumerate(p for p in m.walk() if p.is_multipart()):
        part.set_boundary(f"=_{digest}_{i}")    # same bytes on every run
    return m.as_bytes(policy=SMTP)


def pdf(text: str) -> bytes:
    """A one-page PDF with extractable Helvetica text, one line per line."""
    ops = "BT /F1 11 Tf 50 760 Td 14 TL " + " ".join(
        "(" + ln.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)") + ") '"
        for ln in text.split("\n")) + " ET"
    objs = ["<< /Type /Catalog /Pages 2 0 R >>", "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
            "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R "
            "/Resources << /Font << /F1 5 0 R >> >> >>",
            f"<< /Length {len(ops.encode('latin-1'))} >>\nstream\n{ops}\nendstream",
            "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>"]
    out = b"%PDF-1.4\n"
    offs = []
    for i, o in enumerate(objs, 1):
        offs.append(len(out))
        out += f"{i} 0 obj\n{o}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objs) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{o:010d} 00000 n \n".encode() for o in offs)
    out += f"trailer\n<< /Size {len(objs) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def png_text(text: str, blur: float = 0.0, size: int = 34) -> bytes:
    from PIL import Image, ImageDraw, ImageFilter, ImageFont

    lines = text.split("\n")
    im = Image.new("RGB", (1000, 60 + 50 * len(lines)), "white")
    d = ImageDraw.Draw(im)
    try:
        font = ImageFont.truetype("DejaVuSans.ttf", size)
    except OSError:
        font = ImageFont.load_default(size=size)
    for i, ln in enumerate(lines):
        d.text((24, 28 + 50 * i), ln, fill=(20, 20, 20), font=font)
    if blur:
        im = im.filter(ImageFilter.GaussianBlur(blur))
    buf = io.BytesIO()
    im.save(buf, "PNG")
    return buf.getvalue()


def png_photo() -> bytes:
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (400, 300))
    im.putdata([((3 * x) % 256, (x + 2 * y) % 256, 140 + y % 60) for y in range(300) for x in range(400)])
    ImageDraw.Draw(im).rectangle((150, 100, 260, 210), fill=(120, 90, 60))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=85)
    return buf.getvalue()


CASES: list[tuple[str, bytes, dict, dict]] = []


def add(notes, raw, context, expected):
    CASES.append((notes, raw, context, expected))


# ---- must be delivered untouched: numbers, links, quotes, signatures ----------------------
add("en reply: Royal Mail tracking number, its https link, dates, sizes, price; 'thanks' "
    "inside a real answer",
    mail("Hi Nora,\n\nThanks for getting in touch. Your lamp left our workshop on Tuesday "
         "3 June with Royal Mail Tracked 48, tracking number QX 2048 7731 5GB. You can follow "
         "it here: https://www.royalmail.com/track-your-item#/tracking-results/QX204877315GB\n\n"
         "It normally takes 2-3 working days, so it should be with you by Friday 6 June. The "
         "shade is 42 cm tall and 30 cm across, and the replacement bulb (E27, 8.5 W) costs "
         "£6.40 inc. VAT if you ever need one.\n\nKind regards,\nHarriet\nBrightwater Home Ltd",
         "Re: Where is my lamp?"),
    ctx(n=1), exp("deliver", keep=["QX 2048 7731 5GB", "QX204877315GB", "42 cm", "£6.40"]))
add("de reply: DHL number (20 digits) with its link, delivery window, surcharge",
    mail("Hallo Herr Keller,\n\nvielen Dank für Ihre Nachricht. Das Regal ist gestern an DHL "
         "übergeben worden, die Sendungsnummer lautet 00340434292135100186.\n"
         "Sendungsverfolgung: https://www.dhl.de/de/privatkunden/pakete-empfangen/verfolgen."
         "html?piececode=00340434292135100186\n\nDie Zustellung ist für Donnerstag, 12.06.2025, "
         "zwischen 10:00 und 14:00 Uhr angekündigt. Eine Expresszustellung hätte 4,90 € "
         "Aufpreis gekostet, das ist also nicht nötig.\n\nMit freundlichen Grüßen\n"
         "Martina Holzmann\nHolzmann Werkstatt", "AW: Lieferung Regal", "de"),
    ctx("de", n=2), exp("deliver", keep=["00340434292135100186", "12.06.2025", "4,90 €"]))
add("fr reply (Outlook HTML): size chart with measurements, Colissimo number",
    mail("Bonjour Camille,\n\nMerci pour votre question. La taille 38 correspond à un tour de "
         "poitrine de 88 à 92 cm et à un tour de taille de 70 à 74 cm. Si vous hésitez entre "
         "deux tailles, prenez la plus grande : le lin rétrécit d'environ 2 % au premier lavage.\n\n"
         "Votre colis est parti ce matin, numéro de suivi 6A23456789012 (Colissimo).\n\n"
         "Bien cordialement,\nSophie\nMaison Perrin SARL", "RE: Quelle taille choisir ?", "fr",
         fmt="outlook"),
    ctx("fr"), exp("deliver", keep=["6A23456789012", "88 à 92 cm"]))
add("es reply: return window with a date, price, Correos code",
    mail("Hola Lucía:\n\nClaro que sí. Tienes 30 días desde la entrega (la tuya fue el "
         "14/05/2025) para devolver la lámpara. La devolución se solicita desde Mis pedidos en "
         "Amazon; el importe de 29,95 € se te reembolsa en cuanto nos llegue. El envío original "
         "salió con Correos, código PK43BG0440479730108001N.\n\nUn saludo,\nAlba\nTienda Alba",
         "RE: ¿Puedo devolverla?", "es"),
    ctx("es"), exp("deliver", keep=["14/05/2025", "29,95 €", "PK43BG0440479730108001N"]))
add("it reply: product code, firmware version, dimensions",
    mail("Buongiorno Marco,\n\nil coperchio che cerca ha codice LX-4402-B ed è compatibile con "
         "la sua caraffa (modello 2023, firmware 2.14.3). Le misure della base sono 60 x 40 x "
         "35 mm. Se preferisce, possiamo inviarglielo in sostituzione gratuita: ci basta una "
         "conferma in risposta a questo messaggio.\n\nCordiali saluti\nGiulia - Ceramiche Blu "
         "S.r.l.", "R: Coperchio di ricambio", "it"),
    ctx("it"), exp("deliver", keep=["LX-4402-B", "2.14.3", "60 x 40 x 35 mm"]))
add("ja reply: Yamato slip number in 4-4-4 groups (not a phone number), tax-inclusive price",
    mail("佐藤様\n\nお問い合わせありがとうございます。\nご注文の湯呑みセットは本日ヤマト運輸にて発送いたしました。"
         "\n伝票番号：4321-8765-0912\n配送状況は https://toi.kuronekoyamato.co.jp/cgi-bin/tneko "
         "でご確認いただけます。\n\nお支払い金額は税込 3,980円です。6月12日（木）午前中のお届け予定です。\n\n"
         "くも雑貨店 山田", "Re: 発送について", "ja"),
    ctx("ja"), exp("deliver", keep=["4321-8765-0912", "3,980円"]))
add("pl reply: InPost 24-digit number, parcel locker id, price, invoice with NIP in 3-3-2-2 groups",
    mail("Dzień dobry Panie Tomaszu,\n\npaczka została nadana dziś rano, numer przesyłki InPost: "
         "620123456789012345678901, paczkomat KRA01M. Fakturę VAT nr FV/2025/06/0142 na kwotę "
         "149,00 zł wystawiliśmy na firmę z NIP 526-104-08-28, zgodnie z danymi z zamówienia.\n\n"
         "Pozdrawiamy serdecznie\nAnna\nSklep Lipa sp. z o.o.", "Odp: Faktura i przesyłka", "pl"),
    ctx("pl"), exp("deliver", keep=["620123456789012345678901", "526-104-08-28", "149,00 zł"]))
add("nl reply: PostNL barcode and link, washing temperature, sizes",
    mail("Hoi Bram,\n\nDank je voor je vraag! Het kussen is 50 x 50 cm en mag op 30 graden in de "
         "wasmachine. Je pakket is vandaag verstuurd met PostNL, track & trace: 3SFFX4827163 – "
         "https://jouw.postnl.nl/track-and-trace/3SFFX4827163-NL-1011AB\n\nVerwachte bezorging: "
         "woensdag 11-06-2025 tussen 17:45 en 20:15.\n\nGroetjes,\nLies van FietsFix",
         "Re: Kussen wassen?", "nl"),
    ctx("nl"), exp("deliver", keep=["3SFFX4827163", "50 x 50 cm", "17:45"]))
add("en-US reply: UPS number, marketplace order-history link, ASIN, serial in 4-4-4 groups",
    mail("Hi Nora,\n\nSorry for the trouble! A replacement unit (ASIN B0C7K3M9QZ, model WX-2200) "
         "ships tomorrow via UPS, tracking 1Z 999 AA1 01 2345 6784. Please keep the faulty one "
         "until the return label shows up under https://www.amazon.com/gp/css/order-history. "
         "Your old unit's serial is SN 7731-0042-9915, in case UPS asks.\n\nThe replacement is "
         "$24.99 plus $1.75 tax, fully refunded once the old one is scanned.\n\nBest,\nDana\n"
         "Brightwater Home", "Re: Kettle stopped working"),
    ctx(locale="en-US", n=3), exp("deliver", keep=["1Z 999 AA1 01 2345 6784", "B0C7K3M9QZ",
                                                   "7731-0042-9915", "$24.99"]))
add("en buyer: asks to swap a size, gives the order number, emoji (buyers may)",
    mail("Hi there,\n\nI ordered the size 10 boots (order 028-4471923-5530817) but they're a bit "
         "tight - can I swap them for a 12? 😊 I can post them back tomorrow.\n\nThanks!\nNora",
         "Swap sizes?", direction=B2S),
    ctx(direction=B2S, thread="proactive"), exp("deliver", keep=["028-4471923-5530817", "😊"]))
add("de buyer: colour and dimensions question",
    mail("Guten Tag,\n\nist der Stuhl auch in Anthrazit lieferbar? Die Maße 45 x 52 x 88 cm "
         "würden bei uns perfekt passen. Wir bräuchten ihn bis Ende Juni.\n\nDanke und Gruß\n"
         "Jonas Keller", "Farbe Anthrazit?", "de", direction=B2S),
    ctx("de", direction=B2S, thread="proactive"), exp("deliver", keep=["45 x 52 x 88 cm"]))
add("fr buyer: how to return trousers that are too big",
    mail("Bonjour,\n\nle pantalon est beaucoup trop grand (j'ai pris du 44, il me faudrait du 40). "
         "Comment je fais pour le renvoyer ? Je dois imprimer une étiquette ?\n\nMerci d'avance,\n"
         "Camille", "Retour pantalon", "fr", direction=B2S),
    ctx("fr", direction=B2S, thread="proactive"), exp("deliver"))
add("es-MX buyer: colour and a deadline",
    mail("Hola, ¿tienen la funda en color verde olivo? La necesito antes del 20 de junio porque es "
         "un regalo. Gracias!!\nLucía", "Funda verde", "es", direction=B2S),
    ctx("es", direction=B2S, thread="proactive", locale="es-MX"), exp("deliver"))
add("it buyer: parcel shown delivered but not received, BRT number",
    mail("Buongiorno,\nil pacco risulta consegnato ieri alle 11:32 ma io non l'ho ricevuto e "
         "nemmeno i vicini. Il numero BRT è 068123456789012. Come possiamo fare?\nGrazie, "
         "Marco Bellini", "Pacco non ricevuto", "it", direction=B2S),
    ctx("it", direction=B2S, thread="proactive"), exp("deliver", keep=["068123456789012", "11:32"]))
add("ja buyer: size question",
    mail("お世話になります。\nこちらのシャツはMサイズで着丈何cmでしょうか？身長175cmです。\n"
         "よろしくお願いします。\n佐藤", "サイズについて", "ja", direction=B2S),
    ctx("ja", direction=B2S, thread="proactive"), exp("deliver", keep=["175cm"]))
add("pl buyer: asks for size XL, informal",
    mail("Dzień dobry, czy ta kurtka będzie jeszcze w rozmiarze XL? W opisie jest 2 XL ale to "
         "chyba za duże. Pozdrawiam, Tomek", "rozmiar XL", "pl", direction=B2S),
    ctx("pl", direction=B2S, thread="proactive"), exp("deliver"))
add("nl buyer: defective lamp after two weeks",
    mail("Hoi,\n\nde fietslamp doet het niet meer na 2 weken, ook niet na opladen (USB-C, 5V). "
         "Wat kan ik het beste doen?\n\nGroetjes,\nBram", "Lamp kapot", "nl", direction=B2S),
    ctx("nl", direction=B2S, thread="proactive"), exp("deliver", keep=["5V"]))
add("en reply quoting the buyer under a quote header with the relay alias (stays)",
    mail("Hi Nora,\n\nYes, the cover is machine washable at 40°C, just close the zip first and "
         "skip the tumble dryer.\n\nBest wishes,\nHarriet", "Re: Washing the cover",
         quote=("On Mon, 9 Jun 2025 at 18:02, Nora Quinn <b-7hk2m9xq@relay.example> wrote:",
                "Hello, can the cover go in the washing machine?\nThanks, Nora"),
         fmt="gmail"),
    ctx(), exp("deliver", keep=["b-7hk2m9xq@relay.example", "40°C"]))
add("de reply (Outlook) with a company signature: register no., VAT id in 3-3-3 groups",
    mail("Sehr geehrter Herr Keller,\n\ndie Schrauben für die Wandmontage (4 x M6 x 60) liegen "
         "im Beutel unter der Rückwand. Die Bohrschablone finden Sie auf Seite 3 der Anleitung.\n\n"
         "Mit freundlichen Grüßen\nMartina Holzmann\n\nHolzmann Werkstatt GmbH\nGeschäftsführerin: "
         "Martina Holzmann · Amtsgericht München HRB 218834\nUSt-IdNr. DE 298 471 553",
         "AW: Schrauben fehlen?", "de", fmt="outlook"),
    ctx("de"), exp("deliver", keep=["DE 298 471 553", "HRB 218834", "M6 x 60"]))
add("fr reply: 'merci' inside a real answer, cable specs",
    mail("Bonjour Camille,\n\nMerci pour votre message. Le câble fourni est un USB-C 2.0 de 1,5 m ; "
         "pour la recharge rapide il faut un adaptateur de 20 W minimum, non inclus. La lampe se "
         "recharge en 3 h environ.\n\nBonne journée,\nSophie", "Re: Chargeur", "fr"),
    ctx("fr"), exp("deliver", keep=["1,5 m", "20 W"]))
add("es reply (Gmail HTML): marketplace https link to the order page",
    mail("Hola Lucía:\n\nPuedes descargar la factura desde tu pedido en Amazon: "
         "https://www.amazon.es/gp/your-account/order-details?orderID=305-6620471-8813924\n\n"
         "Si no aparece, dímelo y te la adjunto aquí.\n\nSaludos,\nAlba", "RE: Factura", "es",
         fmt="gmail"),
    ctx("es", n=2), exp("deliver", keep=["https://www.amazon.es/gp/your-account/order-details"]))
add("it reply: free replacement part going out tomorrow (a real answer, not a confirmation)",
    mail("Gentile Marco,\n\ngrazie per la segnalazione e ci scusi per l'inconveniente. Le spediamo "
         "subito un coperchio nuovo (codice RC-118), senza costi: partirà domani, 11 giugno, con "
         "GLS. Il vecchio può tenerlo.\n\nResto a disposizione per qualsiasi chiarimento.\n"
         "Giulia", "R: Coperchio rotto", "it"),
    ctx("it"), exp("deliver", keep=["RC-118"]))
add("ja reply: how to return, with the buyer's own postcode (not a phone number)",
    mail("佐藤様\n\nご連絡ありがとうございます。返品はAmazonの注文履歴から「返品・交換」を選んでお手続きください。\n"
         "お届け先（〒150-0001 東京都渋谷区神宮前1-2-3）へ回収の業者が伺います。\n"
         "返金はお品物の到着後、3〜5営業日以内に行います。\n\nくも雑貨店 山田",
         "Re: 返品したいです", "ja"),
    ctx("ja"), exp("deliver", keep=["150-0001"]))
add("pl reply: refund for a return (money, but no review involved)",
    mail("Dzień dobry,\n\notrzymaliśmy zwrot. Zwrot pieniędzy (89,99 zł) zlecimy dziś, środki "
         "pojawią się na koncie w ciągu 3–5 dni roboczych.\n\nPozdrawiamy\nSklep Lipa",
         "Odp: Zwrot", "pl"),
    ctx("pl"), exp("deliver", keep=["89,99 zł"]))
add("nl reply: thanks plus a real answer about colours",
    mail("Hoi Bram,\n\nBedankt voor je bericht! Het spatbord is er in zwart en mat grijs; de "
         "grijze versie komt volgende week (rond 18 juni) weer binnen. Past op banden tot 28 x "
         "1,75 inch.\n\nFijne dag,\nLies", "Re: Spatbord kleur", "nl"),
    ctx("nl"), exp("deliver", keep=["28 x 1,75"]))
add("en-US proactive: delay notice with a new date and the cancel option (permitted)",
    mail("Hello Nora,\n\nWe're sorry, but your order 402-7759013-3381627 is delayed: our supplier "
         "shipped the wrong batch of lids. The new estimated ship date is June 18. If you'd "
         "rather not wait, you can cancel at no charge from "
         "https://www.amazon.com/gp/your-account/order-history and we'll approve it right away.\n\n"
         "Dana, Brightwater Home", "Delay on your order"),
    ctx(thread="proactive", locale="en-US", n=4), exp("deliver", keep=["402-7759013-3381627"]))
add("de proactive: engraving text needed for a custom order",
    mail("Guten Tag Herr Keller,\n\nfür die Gravur auf dem Schneidebrett benötigen wir noch den "
         "gewünschten Text (max. 20 Zeichen, ohne Sonderzeichen). Sobald wir ihn haben, "
         "fertigen wir innerhalb von 2 Werktagen.\n\nViele Grüße\nHolzmann Werkstatt",
         "Ihre Gravur", "de"),
    ctx("de", thread="proactive"), exp("deliver"))
add("en proactive: one neutral review request on day 14",
    mail("Hi Nora,\n\nWe hope your kettle is doing its job. If you have a minute, you can leave a "
         "review of your order on Amazon - whatever your experience, it helps other shoppers.\n\n"
         "Best wishes,\nBrightwater Home", "Your recent order"),
    ctx(thread="proactive", days=14), exp("deliver"))
add("es proactive: one neutral review request on day 9",
    mail("Hola Lucía:\n\nEsperamos que la lámpara esté funcionando bien. Si te apetece, puedes "
         "dejar tu opinión sobre el producto en Amazon; tu experiencia ayuda a otros clientes.\n\n"
         "Un saludo,\nTienda Alba", "Tu pedido", "es"),
    ctx("es", thread="proactive", days=9), exp("deliver"))
add("pl proactive: one neutral review request on day 25",
    mail("Dzień dobry,\n\nmamy nadzieję, że zamówienie dotarło w porządku. Jeśli znajdzie Pan "
         "chwilę, prosimy o wystawienie opinii o produkcie na Amazon – każda opinia pomaga innym "
         "kupującym.\n\nPozdrawiamy\nSklep Lipa", "Pana zamówienie", "pl"),
    ctx("pl", thread="proactive", days=25), exp("deliver"))
add("ja proactive: one neutral review request on day 7",
    mail("佐藤様\n\n先日はご注文いただきありがとうございました。お品物はいかがでしょうか。\n"
         "よろしければ、Amazonの注文履歴から商品レビューをご投稿いただけますと幸いです。\n\nくも雑貨店",
         "ご注文の商品について", "ja"),
    ctx("ja", thread="proactive", days=7), exp("deliver"))
add("de-AT reply in German: delivery date in Austrian wording",
    mail("Grüß Gott Herr Keller,\n\ndie Lieferung kommt am 2. Jänner mit der Post, Sendungsnummer "
         "CX123456789AT. Sollte niemand zu Hause sein, wird sie ans nächste Postamt "
         "umgeleitet.\n\nLiebe Grüße\nHolzmann Werkstatt", "AW: Lieferung", "de"),
    ctx("de", locale="de-AT"), exp("deliver", keep=["CX123456789AT"]))
add("en reply: heating part number, temperatures, pressure (numbers that are not phones)",
    mail("Hi Nora,\n\nThat error code (F.28) usually means the pressure dropped. Top it up to "
         "1.5 bar, set the thermostat to 21.5°C and restart. If it keeps coming back, the part "
         "you need is the ignition electrode, part number 0020 145 678, which we have in stock "
         "at £18.20.\n\nCheers,\nHarriet", "Re: Boiler error"),
    ctx(), exp("deliver", keep=["0020 145 678", "1.5 bar", "£18.20"]))
add("en buyer in Spanglish: buyers are not bound by the language rule",
    mail("Hola! Quick question, the mochila comes with the rain cover o no? Necesito saber antes "
         "del viernes. Gracias!", "rain cover?", direction=B2S),
    ctx(direction=B2S, thread="proactive", locale="es-ES"), exp("deliver"))
add("es reply: courier visit day and time window",
    mail("Hola Lucía:\n\nEl repartidor de SEUR pasará el jueves 12 entre las 9:00 y las 13:00 a "
         "recoger la mesa. No hace falta embalarla en la caja original, basta con proteger las "
         "esquinas.\n\nGracias y un saludo,\nAlba", "RE: Recogida", "es"),
    ctx("es"), exp("deliver", keep=["9:00", "13:00"]))
add("it reply (Gmail HTML): link to the same product page on the marketplace for the manual",
    mail("Ciao Marco,\n\nil manuale in PDF si scarica dalla pagina del prodotto su Amazon, sotto "
         "\"Documenti del prodotto\": https://www.amazon.it/dp/B0D1XKQ7PZ\n\nBuona serata,\n"
         "Giulia", "R: Manuale", "it", fmt="gmail"),
    ctx("it"), exp("deliver", keep=["https://www.amazon.it/dp/B0D1XKQ7PZ"]))
add("nl reply: bike part codes and torque values",
    mail("Hoi Bram,\n\nDe remblokken die je zoekt zijn de Shimano B05S (resin). Draai de bouten "
         "vast met 6-8 Nm. Ze passen op de BR-MT200 die op jouw fiets zit.\n\nGroet,\nLies",
         "Re: Welke remblokken?", "nl"),
    ctx("nl"), exp("deliver", keep=["B05S", "BR-MT200", "6-8 Nm"]))
add("en reply with PDF attachment: the assembly instructions",
    mail("Hi Nora,\n\nI've attached the assembly sheet for the shelf; step 4 shows which way the "
         "brackets go.\n\nBest,\nHarriet", "Re: Assembly",
         atts=[(pdf("Shelf assembly - model SH-90\n1. Fit the side panels.\n2. Insert dowels.\n"
                    "3. Screw the back panel.\n4. Brackets face inwards."),
                "application", "pdf", "assembly-SH-90.pdf")]),
    ctx(), exp("deliver", keep=["assembly"]))
add("de buyer: photo of the damage, no text in it",
    mail("Hallo,\n\nanbei ein Foto vom Kratzer an der Tischplatte.\n\nGruß\nJonas Keller",
         "Kratzer", "de", direction=B2S, atts=[(png_photo(), "image", "jpeg", "kratzer.jpg")]),
    ctx("de", direction=B2S, thread="proactive"), exp("deliver"))
add("de buyer: thanks only (the thank-you rule binds sellers only)",
    mail("Hallo,\n\nvielen Dank, ist heute angekommen und sieht super aus!\n\nGruß Jonas",
         "AW: Lieferung", "de", direction=B2S),
    ctx("de", direction=B2S), exp("deliver"))
add("fr reply: opening hours of the carrier's pick-up point and a time",
    mail("Bonjour Camille,\n\nLe colis vous attend au point relais Mondial Relay (tabac du marché), "
         "ouvert du lundi au samedi de 8 h 30 à 19 h. Pensez à prendre une pièce d'identité et le "
         "code de retrait à 6 chiffres reçu par SMS.\n\nBonne journée,\nSophie", "Re: Colis en "
         "point relais", "fr"),
    ctx("fr"), exp("deliver", keep=["8 h 30"]))
add("pl reply: product dimensions and weight limit, EAN code",
    mail("Dzień dobry,\n\nstolik ma wymiary 60 x 60 x 45 cm, blat wytrzymuje do 25 kg. Kod EAN "
         "produktu to 5901234123457, gdyby szukał Pan go w innym kolorze na Amazon.\n\n"
         "Pozdrawiamy\nSklep Lipa", "Odp: Wymiary stolika", "pl"),
    ctx("pl"), exp("deliver", keep=["5901234123457", "60 x 60 x 45 cm"]))
add("ja reply (HTML only): delivery time slot",
    mail("", "Re: 配達日時の変更", "ja", html_only=True,
         html="<div>佐藤様</div><div><br></div><div>配達日時を6月14日（土）19時〜21時に変更いたしました。"
              "</div><div>ヤマト運輸の伝票番号は 5512-3409-8876 です。</div><div><br></div>"
              "<div>くも雑貨店 山田</div>"),
    ctx("ja"), exp("deliver", keep=["5512-3409-8876", "19時〜21時"]))
add("en buyer quoting the seller (Outlook), with the relay alias in the quote header",
    mail("Hi Harriet,\n\nThat worked, thank you! One more thing: does the 60 cm shade fit the same "
         "base?\n\nNora\n\nFrom: Brightwater Home <s-4kq8w2zt@relay.example>\nSent: 09 June 2025 "
         "16:20\nSubject: Re: Flickering lamp\n\nHi Nora, try tightening the bulb a quarter turn.",
         "RE: Flickering lamp", direction=B2S, fmt="outlook"),
    ctx(direction=B2S), exp("deliver", keep=["s-4kq8w2zt@relay.example", "60 cm"]))
add("it reply: installation times, voltage, warranty period in months",
    mail("Buongiorno Marco,\n\nla lampada funziona a 220-240 V, 50 Hz. L'installazione richiede "
         "circa 20 minuti; la garanzia è di 24 mesi dalla data di consegna (05/06/2025), basta "
         "tenere la fattura.\n\nCordiali saluti\nGiulia", "R: Garanzia", "it"),
    ctx("it"), exp("deliver", keep=["220-240 V", "05/06/2025"]))

# ---- thank_you_only: thanks, courtesy replies, open offers of help ----------------------
add("en proactive: thanks and 'drop us a line' only",
    mail("Hello Nora,\n\nJust a quick note to say thanks for shopping with Brightwater - we really "
         "appreciate it. Any questions at all, just drop us a line here.\n\nCheers,\nHarriet",
         "A quick note"),
    ctx(thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("en-US reply: courtesy answer to the buyer's thanks, quoted history",
    mail("Aw, that's great to hear, thanks for letting us know! Enjoy it.\n\n- Dana",
         "Re: Arrived", quote=("On Mon, Jun 9, 2025 at 7:15 PM <b-1mz8c4ra@relay.example> wrote:",
                               "Got it today, works perfectly. Thanks!")),
    ctx(locale="en-US"), exp("reject", reject=["thank_you_only"]))
add("de proactive: thanks for the order and 'we're here if needed'",
    mail("Sehr geehrter Herr Keller,\n\nherzlichen Dank für Ihre Bestellung bei Holzmann Werkstatt! "
         "Wir wünschen Ihnen viel Freude mit Ihrem neuen Regal. Sollten Fragen auftauchen, "
         "melden Sie sich jederzeit bei uns.\n\nMit besten Grüßen\nIhr Holzmann-Team",
         "Danke!", "de", fmt="outlook"),
    ctx("de", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("fr reply: courtesy answer ('avec plaisir')",
    mail("Bonjour Camille,\n\nAvec plaisir ! Ravis que tout vous convienne.\n\nBonne soirée,\nPaul",
         "Re: Bien reçu", "fr"),
    ctx("fr"), exp("reject", reject=["thank_you_only"]))
add("es proactive (Gmail HTML): thanks for trusting us, here for anything",
    mail("¡Hola Lucía!\n\nGracias por confiar en Tienda Alba. Cualquier cosa que necesites, aquí "
         "estamos para ayudarte.\n\nUn abrazo,\nAlba", "Gracias por tu compra", "es", fmt="gmail"),
    ctx("es", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("it reply: informal courtesy ('figurati')",
    mail("Ciao Marco,\n\nfigurati, è stato un piacere! Buona giornata e a presto.\n\nGiulia",
         "R: Ricevuto", "it"),
    ctx("it"), exp("reject", reject=["thank_you_only"]))
add("ja proactive: formal thanks and 'contact us anytime'",
    mail("佐藤様\n\nこの度はくも雑貨店をご利用いただき、誠にありがとうございました。\n"
         "何かございましたら、お気軽にご連絡くださいませ。\n今後ともよろしくお願い申し上げます。\n\nくも雑貨店",
         "ご購入ありがとうございました", "ja"),
    ctx("ja", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("pl proactive: thanks for shopping, at your disposal",
    mail("Dzień dobry,\n\ndziękujemy za zakupy w naszym sklepie! W razie jakichkolwiek pytań "
         "pozostajemy do dyspozycji.\n\nPozdrawiamy serdecznie\nZespół Sklepu Lipa",
         "Dziękujemy", "pl"),
    ctx("pl", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("nl reply: 'geen probleem', glad it arrived",
    mail("Hoi Bram,\n\nGeen probleem hoor, fijn dat alles goed is aangekomen! Nog een fijne dag.\n\n"
         "Lies", "Re: Binnen!", "nl"),
    ctx("nl"), exp("reject", reject=["thank_you_only"]))
add("en proactive (Outlook), typos: thanks and 'get in touch if there's an issue'",
    mail("Hi Nora\n\nThankyou for your order, we hope you love it!! If theres ever an issue dont "
         "hesitate to get in touch with us\n\nKind regards\nBrightwater Home", "Thankyou!",
         fmt="outlook"),
    ctx(thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("de reply: short courtesy ('sehr gerne')",
    mail("Hallo Herr Keller,\n\nsehr gerne! Freut mich, dass es passt.\n\nViele Grüße\nMartina",
         "AW: Passt!", "de"),
    ctx("de"), exp("reject", reject=["thank_you_only"]))
# ---- review_solicitation ----------------------------------------------------------------
add("en gating without a review keyword: happy ones tell other shoppers, unhappy ones write first",
    mail("Hi Nora,\n\nAre you happy with your new kettle? If so, we'd love it if you told other "
         "shoppers about it on the product page. If not, please reply to this message first so "
         "we can put things right.\n\nHarriet", "How's the kettle?"),
    ctx(thread="proactive", days=10), exp("reject", reject=["review_solicitation"]))
add("de gating: satisfied -> 5 stars, not satisfied -> write to us before rating",
    mail("Hallo Herr Keller,\n\nsind Sie zufrieden mit Ihrem Regal? Dann freuen wir uns riesig "
         "über 5 Sterne! Falls etwas nicht passt, schreiben Sie uns bitte zuerst, bevor Sie "
         "eine Bewertung abgeben.\n\nIhr Holzmann-Team", "Alles gut?", "de"),
    ctx("de", thread="proactive", days=8), exp("reject", reject=["review_solicitation"]))
add("fr asks only satisfied buyers for a word on the marketplace",
    mail("Bonjour Camille,\n\nSi vous êtes satisfaite de votre achat, laissez-nous un petit mot "
         "sur Amazon, cela nous aide énormément !\n\nMaison Perrin", "Votre avis compte", "fr"),
    ctx("fr", thread="proactive", days=10), exp("reject", reject=["review_solicitation"]))
add("es reply: asks to update a 2-star rating after sending the part",
    mail("Hola Lucía:\n\nHemos visto tu valoración de 2 estrellas. Ya te enviamos la pieza nueva "
         "ayer; ¿podrías actualizar tu opinión cuando la recibas?\n\nGracias,\nAlba",
         "RE: Pieza rota", "es"),
    ctx("es"), exp("reject", reject=["review_solicitation"]))
add("it reply: asks to delete the negative comment now that it is solved",
    mail("Gentile Marco,\n\nora che il problema è stato risolto, le chiediamo gentilmente di "
         "eliminare il commento negativo che ha lasciato sulla pagina del prodotto.\n\n"
         "Grazie mille,\nCeramiche Blu", "R: Problema risolto", "it"),
    ctx("it"), exp("reject", reject=["review_solicitation"]))
add("pl reply: full refund if the rating is changed to positive",
    mail("Dzień dobry,\n\nzwrócimy Panu pełną kwotę 120 zł, jeśli zmieni Pan ocenę na "
         "pozytywną.\n\nPozdrawiamy\nSklep Lipa", "Odp: Reklamacja", "pl"),
    ctx("pl"), exp("reject", reject=["review_solicitation", "review_incentive"]))
add("nl repeat request (prior_review_requests=1), neutral wording",
    mail("Hoi Bram,\n\nZou je nog even een beoordeling willen achterlaten over je bestelling? "
         "Dat helpt ons enorm.\n\nGroet,\nFietsFix", "Herinnering: jouw mening", "nl"),
    ctx("nl", thread="proactive", prior=1, days=20), exp("reject", reject=["review_solicitation"]))
add("ja gating: 5 stars if satisfied, contact us before reviewing if not",
    mail("佐藤様\n\nご満足いただけましたら、ぜひ星5つのレビューをお願いいたします。\n"
         "ご不満な点がございましたら、レビューを書く前に当店までご連絡ください。\n\nくも雑貨店",
         "商品はいかがですか", "ja"),
    ctx("ja", thread="proactive", days=6), exp("reject", reject=["review_solicitation"]))
add("en-US neutral request only 2 days after delivery: outside the window",
    mail("Hi Nora,\n\nIf you have a moment, please consider leaving a review of your order on "
         "Amazon. Thanks!\n\nDana", "Your order"),
    ctx(thread="proactive", days=2, locale="en-US"), exp("reject", reject=["review_solicitation"]))
add("en neutral request 45 days after delivery: outside the window",
    mail("Hello Nora,\n\nWe'd be grateful if you could share a review of the lamp you bought from "
         "us.\n\nKind regards,\nBrightwater Home", "Share your thoughts"),
    ctx(thread="proactive", days=45), exp("reject", reject=["review_solicitation"]))
add("de reply: refund once the 1-star rating is removed",
    mail("Sehr geehrter Herr Keller,\n\nwir erstatten Ihnen selbstverständlich den Kaufpreis, "
         "sobald Sie die 1-Stern-Bewertung entfernt haben.\n\nMit freundlichen Grüßen\n"
         "Holzmann Werkstatt", "AW: Reklamation", "de"),
    ctx("de"), exp("reject", reject=["review_solicitation", "review_incentive"]))
add("fr third reminder (prior_review_requests=2)",
    mail("Bonjour Camille,\n\nPetit rappel : avez-vous eu le temps de donner votre avis sur "
         "votre commande ? Cela ne prend qu'une minute.\n\nMaison Perrin", "Petit rappel", "fr"),
    ctx("fr", thread="proactive", prior=2, days=21), exp("reject", reject=["review_solicitation"]))
add("es gating without review words: perfect -> tell others, problem -> write us first",
    mail("¡Hola Lucía!\n\n¿Todo perfecto con tu pedido? ¡Cuéntaselo a otros compradores! ¿Algún "
         "problema? Escríbenos antes a nosotros y lo solucionamos.\n\nTienda Alba",
         "¿Qué tal todo?", "es"),
    ctx("es", thread="proactive", days=12), exp("reject", reject=["review_solicitation"]))
add("it asks for positive feedback if satisfied",
    mail("Gentile Marco,\n\nse è soddisfatto del servizio, ci lascerebbe un feedback positivo? "
         "Per un piccolo negozio come il nostro fa davvero la differenza.\n\nCeramiche Blu",
         "Una piccola richiesta", "it"),
    ctx("it", thread="proactive", days=11), exp("reject", reject=["review_solicitation"]))
add("en reply: asks to update feedback now the replacement arrived",
    mail("Hi Nora,\n\nGlad the replacement has arrived safely! Now that it's sorted, would you "
         "mind updating your feedback?\n\nThanks so much,\nHarriet", "Re: Replacement"),
    ctx(), exp("reject", reject=["review_solicitation"]))
add("pl gating: satisfied -> opinion, problem -> contact us first",
    mail("Dzień dobry Pani Anno,\n\njeśli jest Pani zadowolona z zakupu, będziemy wdzięczni za "
         "opinię. Jeśli coś jest nie tak, prosimy najpierw o kontakt z nami.\n\nSklep Lipa",
         "Jak się sprawdza?", "pl"),
    ctx("pl", thread="proactive", days=9), exp("reject", reject=["review_solicitation"]))
add("nl gating in an otherwise neutral tone: only when you are satisfied",
    mail("Hoi Bram,\n\nBen je tevreden over je nieuwe fietstas? Laat dan een review achter op "
         "Amazon. Niet tevreden? Stuur ons eerst een berichtje, dan lossen we het op.\n\n"
         "FietsFix", "Tevreden?", "nl"),
    ctx("nl", thread="proactive", days=10), exp("reject", reject=["review_solicitation"]))
# ---- review_incentive -----------------------------------------------------------------
add("en gift card for a review",
    mail("Hi Nora,\n\nLeave us a review and we'll send you a £10 Amazon gift card as a little "
         "thank-you.\n\nHarriet", "A little something"),
    ctx(thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
add("de discount for an 'honest' review",
    mail("Hallo Herr Keller,\n\nfür Ihre ehrliche Rezension erhalten Sie 15 % Rabatt auf Ihren "
         "nächsten Einkauf bei uns.\n\nHolzmann Werkstatt", "Ihre Meinung", "de"),
    ctx("de", thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
add("fr shipping refunded in exchange for a review",
    mail("Bonjour Camille,\n\nEn échange d'un avis sur notre boutique, nous vous rembourserons "
         "les frais de port de votre commande.\n\nMaison Perrin", "Offre spéciale", "fr"),
    ctx("fr", thread="proactive", days=8), exp("reject", reject=["review_incentive"]))
add("es free second screen protector for an opinion with a photo",
    mail("¡Hola Lucía!\n\nSi nos dejas tu opinión con una foto, te enviamos gratis un segundo "
         "protector de pantalla.\n\nTienda Alba", "¡Regalo!", "es"),
    ctx("es", thread="proactive", days=7), exp("reject", reject=["review_incentive"]))
add("it voucher for a review",
    mail("Gentile Marco,\n\nci lasci una recensione e riceverà un buono sconto di 5 euro sul "
         "prossimo ordine.\n\nCeramiche Blu", "Un pensiero per lei", "it"),
    ctx("it", thread="proactive", days=9), exp("reject", reject=["review_incentive"]))
add("ja gift card for everyone who writes a review",
    mail("佐藤様\n\nレビューを書いていただいた方全員に、Amazonギフト券500円分をプレゼントいたします。\n\nくも雑貨店",
         "プレゼントのお知らせ", "ja"),
    ctx("ja", thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
add("nl prize draw for a review",
    mail("Hoi Bram,\n\nLaat een review achter en maak kans op een gratis airfryer! De winnaar "
         "maken we eind juni bekend.\n\nFietsFix", "Win een airfryer", "nl"),
    ctx("nl", thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
add("pl part of the price back for an opinion",
    mail("Dzień dobry,\n\nza wystawienie opinii oddamy Panu 10% wartości zamówienia na "
         "konto.\n\nSklep Lipa", "Zwrot 10%", "pl"),
    ctx("pl", thread="proactive", days=10), exp("reject", reject=["review_incentive"]))
# ---- promotional inside a legitimate answer ------------------------------------------
add("en-US answer, then a P.S. with a new range and a discount code",
    mail("Hi Nora,\n\nThe board is oiled with food-safe mineral oil, so it's fine for raw meat; "
         "just hand-wash it.\n\nP.S. Our new range of bamboo chopping boards just launched - 20% "
         "off with code SUMMER20!\n\nDana", "Re: Is it food safe?"),
    ctx(locale="en-US"), exp("reject", reject=["promotional"]))
add("de answer, then recommends a matching care oil (upsell)",
    mail("Hallo Herr Keller,\n\ndie Tischplatte ist geölt, nicht lackiert. Kleine Flecken "
         "lassen sich mit feinem Schleifpapier (Körnung 240) entfernen.\n\nÜbrigens: Passend dazu "
         "gibt es unser Pflegeöl für 12,90 €, das wir Ihnen wärmstens empfehlen.\n\nViele "
         "Grüße\nMartina", "AW: Flecken", "de"),
    ctx("de"), exp("reject", reject=["promotional"]))
add("fr answer, then a code for the next order",
    mail("Bonjour Camille,\n\nLe coussin est déhoussable et la housse passe en machine à 30 °C.\n\n"
         "Profitez de -15 % sur votre prochaine commande avec le code MERCI15 !\n\nMaison Perrin",
         "Re: Entretien", "fr"),
    ctx("fr"), exp("reject", reject=["promotional"]))
add("es answer (Gmail HTML), then 'have a look at our new autumn collection'",
    mail("Hola Lucía:\n\nLa bombilla es E14 de 4 W, cálida (2700 K).\n\nPor cierto, echa un "
         "vistazo a nuestra nueva colección de otoño en nuestra tienda de Amazon, ¡te va a "
         "encantar!\n\nAlba", "RE: Bombilla", "es", fmt="gmail"),
    ctx("es"), exp("reject", reject=["promotional"]))
add("it answer, then points to the XL version with free shipping for regulars",
    mail("Buongiorno Marco,\n\nlo zaino ha una capienza di 22 litri e lo scomparto per il PC "
         "arriva a 15 pollici.\n\nLe segnaliamo anche che è disponibile la versione XL da 30 litri, "
         "con spedizione gratuita per i clienti abituali come lei.\n\nGiulia", "R: Capienza",
         "it"),
    ctx("it"), exp("reject", reject=["promotional"]))
add("ja answer, then a new product announcement",
    mail("佐藤様\n\nこちらのマグは電子レンジ・食洗機ともにご使用いただけます。\n\n"
         "また、新商品のステンレスボトルも好評発売中です。ぜひご覧ください。\n\nくも雑貨店",
         "Re: 食洗機は使えますか", "ja"),
    ctx("ja"), exp("reject", reject=["promotional"]))
add("pl answer, then invites to see the accessories on sale",
    mail("Dzień dobry,\n\nlampka ma baterię 2000 mAh, wystarcza na około 8 godzin świecenia.\n\n"
         "Zapraszamy również do zapoznania się z naszą ofertą akcesoriów – teraz w promocji -25%!\n\n"
         "Sklep Lipa", "Odp: Bateria", "pl"),
    ctx("pl"), exp("reject", reject=["promotional"]))
add("nl answer, then 'did you know we also sell...', 2-for-1",
    mail("Hoi Bram,\n\nDe fietstas is waterdicht (IPX4) en heeft een inhoud van 20 liter.\n\n"
         "Wist je dat we ook bijpassende regenhoezen verkopen? Nu 2 halen, 1 betalen.\n\nLies",
         "Re: Waterdicht?", "nl"),
    ctx("nl"), exp("reject", reject=["promotional"]))
add("en proactive sale announcement",
    mail("Hi Nora,\n\nOur summer sale starts today: up to 40% off everything in the shop, this "
         "week only. Don't miss out!\n\nBrightwater Home", "Summer sale - up to 40% off"),
    ctx(thread="proactive"), exp("reject", reject=["promotional"]))
add("de answer, then newsletter sign-up",
    mail("Guten Tag Herr Keller,\n\ndas Holz ist FSC-zertifizierte Eiche aus Bayern.\n\nMelden Sie "
         "sich gern für unseren Newsletter an, dann verpassen Sie keine Angebote mehr.\n\n"
         "Holzmann Werkstatt", "AW: Holzart", "de"),
    ctx("de"), exp("reject", reject=["promotional"]))
# ---- off_platform --------------------------------------------------------------------
add("en seller: order direct from our website next time to avoid the fees",
    mail("Hi Nora,\n\nThe spare glass is in the post. Next time, just order direct from our own "
         "website instead of Amazon - it's cheaper for both of us as we don't pay the fees.\n\n"
         "Harriet", "Re: Spare glass"),
    ctx(), exp("reject", reject=["off_platform"]))
add("de buyer: proposes a direct bank transfer to save fees",
    mail("Hallo,\n\nich würde gern noch zwei Stühle nehmen. Können wir das nicht direkt per "
         "Überweisung machen? Dann sparen Sie sich die Gebühren und ich auch.\n\nGruß Jonas",
         "Noch zwei Stühle", "de", direction=B2S),
    ctx("de", direction=B2S, thread="proactive"), exp("reject", reject=["off_platform"]))
add("fr seller: pay the second item via PayPal between friends",
    mail("Bonjour Camille,\n\nPour le deuxième coussin, vous pouvez nous régler directement par "
         "PayPal entre proches, c'est plus simple et on vous l'envoie demain.\n\nPaul",
         "Re: Deuxième coussin", "fr"),
    ctx("fr"), exp("reject", reject=["off_platform"]))
add("es buyer: sell it to me outside Amazon, I pay by Bizum",
    mail("Hola, ¿me lo puedes vender fuera de Amazon? Te pago por Bizum y así nos ahorramos la "
         "comisión. Gracias", "Otra lámpara", "es", direction=B2S),
    ctx("es", direction=B2S, thread="proactive"), exp("reject", reject=["off_platform"]))
add("it seller: write us on WhatsApp at the number on the invoice (no number in the message)",
    mail("Gentile Marco,\n\nper velocizzare, ci scriva su WhatsApp allo stesso numero che trova "
         "sulla fattura: così le mandiamo le foto dei colori.\n\nGiulia", "R: Colori", "it"),
    ctx("it"), exp("reject", reject=["off_platform"]))
add("ja seller: order from our official shop next time",
    mail("佐藤様\n\n次回からは当店の公式オンラインショップから直接ご注文いただくと、送料無料でお得です。\n\nくも雑貨店",
         "Re: 追加注文", "ja"),
    ctx("ja"), exp("reject", reject=["off_platform"]))
add("pl buyer: pay by BLIK straight to the seller's phone",
    mail("Dzień dobry, czy mogę zapłacić BLIKIEM bezpośrednio na Pana telefon za drugą lampkę? "
         "Wtedy będzie taniej. Pozdrawiam", "Druga lampka", "pl", direction=B2S),
    ctx("pl", direction=B2S, thread="proactive"), exp("reject", reject=["off_platform"]))
add("nl seller: call us, we'll sort it by phone rather than via this messaging system",
    mail("Hoi Bram,\n\nBel ons even, dan regelen we de retour telefonisch. Dat gaat een stuk "
         "sneller dan via dit berichtensysteem.\n\nLies", "Re: Retour", "nl"),
    ctx("nl"), exp("reject", reject=["off_platform"]))
add("en-US buyer: can we do this over text instead",
    mail("Hey, can we just do this over text instead? Way easier than this message thing. "
         "Let me know", "question", direction=B2S),
    ctx(direction=B2S, locale="en-US"), exp("reject", reject=["off_platform"]))
add("de seller: write me on Telegram, the username is in our profile",
    mail("Hallo Herr Keller,\n\nschreiben Sie mir am besten direkt auf Telegram, den Nutzernamen "
         "finden Sie in unserem Verkäuferprofil.\n\nMartina", "AW: Sonderanfertigung", "de"),
    ctx("de"), exp("reject", reject=["off_platform"]))
add("en seller: pay the difference by bank transfer to an IBAN",
    mail("Hi Nora,\n\nWe can send the larger size if you pay the £12 difference by bank transfer "
         "to GB33BUKB20201555555555 (Brightwater Home Ltd).\n\nHarriet", "Re: Bigger size"),
    ctx(), exp("reject", reject=["off_platform"]))
# ---- hold ---------------------------------------------------------------------------
add("seller attaches a photo of a handwritten-looking note too blurred to read: hold",
    mail("Hi Nora,\n\nSee the note from our workshop in the picture.\n\nHarriet",
         "Re: Repair", atts=[(png_text("Please ring the workshop before Friday\nabout the "
                                       "replacement hinge and the fitting", blur=3.2, size=18),
                              "image", "png", "note.png")]),
    ctx(), exp("hold"))
add("seller writes to a de-DE buyer in a language the policy does not ship (Swahili): hold",
    mail("Habari Bwana Keller,\n\nAsante kwa ujumbe wako. Tutakutumia sehemu mpya wiki ijayo "
         "na tunaomba radhi kwa usumbufu huu.\n\nWasalaam,\nHolzmann", "AW: Ersatzteil", "de"),
    ctx("de"), exp("hold"))
add("es seller attaches an image whose text asks for payment by transfer: reject (or hold)",
    mail("Hola Lucía:\n\nTe paso la información en la imagen.\n\nAlba", "RE: Segunda mesa", "es",
         atts=[(png_text("Pago por transferencia bancaria\nfuera de Amazon: 10% de descuento"),
                "image", "png", "info.png")]),
    ctx("es"), exp("reject", reject=["off_platform"], hold_ok=True))

# ---- contact details in every form (redact) -------------------------------------------
add("en seller: address spelled out with 'dot' and 'at'",
    mail("Hi Nora,\n\nThe manual is a big file, so drop me a line at harriet dot wells at gmail "
         "dot com and I'll send it over.\n\nHarriet", "Re: Manual"),
    ctx(), exp("redact", redact=["email_address"],
               gone=["harriet dot wells at gmail dot com", "harriet.wells@gmail.com"]))
add("de seller: '(at)' and '(punkt)' form",
    mail("Hallo Herr Keller,\n\nschicken Sie mir die Fotos gern an m.holzmann (at) web (punkt) de, "
         "dann schaue ich mir das an.\n\nMartina", "AW: Fotos", "de"),
    ctx("de"), exp("redact", redact=["email_address"],
                   gone=["m.holzmann (at) web (punkt) de", "m.holzmann@web.de"]))
add("fr seller: 'arobase' and 'point' in words",
    mail("Bonjour Camille,\n\nVous pouvez m'écrire à paul.girard arobase orange point fr pour les "
         "photos du défaut.\n\nPaul", "Re: Défaut", "fr"),
    ctx("fr"), exp("redact", redact=["email_address"],
                   gone=["paul.girard arobase orange point fr", "paul.girard@orange.fr"]))
add("es buyer: 'arroba' and 'punto' in words",
    mail("Hola, mi correo es lucia_romero88 arroba hotmail punto com por si necesitas mandarme la "
         "factura. Gracias", "Factura", "es", direction=B2S),
    ctx("es", direction=B2S), exp("redact", redact=["email_address"],
                                  gone=["lucia_romero88 arroba hotmail punto com",
                                        "lucia_romero88@hotmail.com"]))
add("it seller: AT / DOT in capitals",
    mail("Buongiorno Marco,\n\nper le foto può scrivere ad assistenza AT ceramicheblu DOT it, "
         "rispondiamo entro un giorno.\n\nGiulia", "R: Foto", "it"),
    ctx("it"), exp("redact", redact=["email_address"],
                   gone=["assistenza AT ceramicheblu DOT it", "assistenza@ceramicheblu.it"]))
add("pl buyer: 'małpa' and 'kropka'",
    mail("Dzień dobry, mój mail: tomek.nowak małpa wp kropka pl, proszę o fakturę. Pozdrawiam",
         "Faktura", "pl", direction=B2S),
    ctx("pl", direction=B2S), exp("redact", redact=["email_address"],
                                  gone=["tomek.nowak małpa wp kropka pl", "tomek.nowak@wp.pl"]))
add("nl seller: 'apenstaartje' and 'punt'",
    mail("Hoi Bram,\n\nMail gerust naar lies apenstaartje fietsfix punt nl, dan stuur ik je de "
         "handleiding.\n\nLies", "Re: Handleiding", "nl"),
    ctx("nl"), exp("redact", redact=["email_address"],
                   gone=["lies apenstaartje fietsfix punt nl", "lies@fietsfix.nl"]))
add("ja seller: 'アットマーク' written in katakana",
    mail("佐藤様\n\n詳しい資料はメールでお送りしますので、yamada アットマーク kumo-zakka.jp までご連絡ください。\n\nくも雑貨店",
         "Re: 資料", "ja"),
    ctx("ja"), exp("redact", redact=["email_address"],
                   gone=["yamada アットマーク kumo-zakka.jp", "yamada@kumo-zakka.jp",
                         "kumo-zakka.jp"]))
add("en-US seller (HTML only): address split across three spans",
    mail("", "Re: Warranty", html_only=True,
         html="<div>Hi Nora,</div><div>For the warranty form, email me at <span>dana.k</span>"
              "<span>@</span><span>outlook.com</span> and I'll fill it in for you.</div>"
              "<div>Dana</div>"),
    ctx(locale="en-US"), exp("redact", redact=["email_address"],
                                     gone=["dana.k @ outlook.com", "dana.k@outlook.com", "dana.k"]))
add("de seller (Gmail HTML): private address and mobile in a display:none block",
    mail("Hallo Herr Keller,\n\ndas Ersatzteil ist unterwegs.\n\nViele Grüße\nMartina",
         "AW: Ersatzteil", "de",
         html='<div dir="ltr"><div>Hallo Herr Keller,</div><div><br></div><div>das Ersatzteil '
              'ist unterwegs.</div><div style="display:none">Privat: anna.lenz@gmx.de · '
              '0171 2345678</div><div><br></div><div>Viele Grüße<br>Martina</div></div>'),
    ctx("de"), exp("redact", redact=["hidden_content", "email_address"],
                   gone=["anna.lenz@gmx.de", "0171 2345678"]))
add("fr seller (HTML): mobile number in white on white",
    mail("Bonjour Camille,\n\nLa housse part demain.\n\nPaul", "Re: Housse", "fr",
         html='<div>Bonjour Camille,</div><div>La housse part demain.</div>'
              '<p style="color:#ffffff;background:#ffffff">Portable : 06 39 98 12 34</p>'
              '<div>Paul</div>'),
    ctx("fr"), exp("redact", redact=["hidden_content", "phone_number"],
                   gone=["06 39 98 12 34"]))
add("en seller: bare domain under a new TLD (.shop)",
    mail("Hi Nora,\n\nAll our fitting guides are on harriet-makes.shop if you want the PDF.\n\n"
         "Harriet", "Re: Fitting guide"),
    ctx(), exp("redact", redact=["external_link"], gone=["harriet-makes.shop"]))
add("es seller: bare domain under .online for a manual",
    mail("Hola Lucía:\n\nEl manual completo lo tienes en manuales-alba.online, en la sección de "
         "lámparas.\n\nAlba", "RE: Manual", "es"),
    ctx("es"), exp("redact", redact=["external_link"], gone=["manuales-alba.online"]))
add("en buyer: UK mobile in international format for the courier",
    mail("Hi,\n\nIf the courier can't find the house, my number is +44 7700 900418.\n\nNora",
         "Delivery", direction=B2S),
    ctx(direction=B2S), exp("redact", redact=["phone_number"], gone=["+44 7700 900418",
                                                                     "7700 900418"]))
add("de seller: Berlin landline with (0) and extension",
    mail("Hallo Herr Keller,\n\nam schnellsten erreichen Sie mich unter +49 (0)30 901820-44.\n\n"
         "Martina", "AW: Rückfrage", "de"),
    ctx("de"), exp("redact", redact=["phone_number"], gone=["+49 (0)30 901820-44", "901820-44"]))
add("it buyer: mobile in 3-3-4 groups",
    mail("Buongiorno, per la consegna il mio cellulare è 347 123 4567, il corriere mi chiami "
         "prima. Grazie", "Consegna", "it", direction=B2S),
    ctx("it", direction=B2S), exp("redact", redact=["phone_number"], gone=["347 123 4567"]))
add("es seller: mobile in 3-2-2-2 groups, 'llámame'",
    mail("Hola Lucía:\n\nSi lo prefieres, llámame al 612 34 56 78 y lo vemos.\n\nAlba",
         "RE: Montaje", "es"),
    ctx("es"), exp("redact", redact=["phone_number"], gone=["612 34 56 78"]))
add("pl seller: +48 mobile next to an InPost number that stays",
    mail("Dzień dobry,\n\nprzesyłka InPost 620987654321098765432101 jest w drodze. W razie "
         "problemów proszę dzwonić: +48 601 234 567.\n\nAnna", "Odp: Przesyłka", "pl"),
    ctx("pl"), exp("redact", redact=["phone_number"], gone=["+48 601 234 567"],
                   keep=["620987654321098765432101"]))
add("nl buyer: Dutch mobile written 06-12345678",
    mail("Hoi, als de bezorger vragen heeft kan hij me bellen op 06-12345678. Groetjes Bram",
         "Bezorging", "nl", direction=B2S),
    ctx("nl", direction=B2S), exp("redact", redact=["phone_number"], gone=["06-12345678"]))
add("ja seller: mobile 090-xxxx-xxxx next to a Yamato number that stays",
    mail("佐藤様\n\n伝票番号 4412-0098-7731 で発送済みです。お急ぎの場合は担当の携帯 090-1234-5678 まで"
         "お電話ください。\n\nくも雑貨店", "Re: 至急", "ja"),
    ctx("ja"), exp("redact", redact=["phone_number"], gone=["090-1234-5678"],
                   keep=["4412-0098-7731"]))
add("en-US seller: NANP number with parentheses",
    mail("Hi Nora,\n\nGive me a ring at (212) 555-0147 after 5pm and we'll sort out the "
         "engraving.\n\nDana", "Re: Engraving"),
    ctx(locale="en-US"), exp("redact", redact=["phone_number"], gone=["(212) 555-0147",
                                                                      "555-0147"]))
add("en buyer: mobile number entirely in words",
    mail("Hi, the courier can call me on zero seven seven zero zero nine zero zero five six "
         "two. Thanks, Nora", "Courier", direction=B2S),
    ctx(direction=B2S), exp("redact", redact=["phone_number"],
                            gone=["zero seven seven zero zero nine zero zero five six two"]))
add("es seller: number in words grouped in threes",
    mail("Hola Lucía:\n\nMi móvil es seis uno dos, tres cuatro cinco, seis siete ocho. "
         "Escríbeme cuando quieras.\n\nAlba", "RE: Contacto", "es"),
    ctx("es"), exp("redact", redact=["phone_number"],
                   gone=["seis uno dos, tres cuatro cinco, seis siete ocho"]))
add("de buyer: mobile with digits and number words mixed",
    mail("Hallo, rufen Sie mich einfach an: null eins sieben eins 98 76 54 3. Danke, Jonas",
         "Rückruf", "de", direction=B2S),
    ctx("de", direction=B2S), exp("redact", redact=["phone_number"],
                                  gone=["null eins sieben eins 98 76 54 3"]))
add("nl seller (HTML only): mobile split across bold and span tags",
    mail("", "Re: Afspraak", "nl", html_only=True,
         html="<p>Hoi Bram,</p><p>Bel me even op <b>06</b>&nbsp;<span>87</span><span>65</span>"
              "<span>43</span><span>21</span> voor de afspraak.</p><p>Lies</p>"),
    ctx("nl"), exp("redact", redact=["phone_number"], gone=["06 87 65 43 21"]))
add("en seller: address with an unusual TLD (.london)",
    mail("Hi Nora,\n\nSend any questions to sales@brightwater.london and we'll get back to you.\n\n"
         "Harriet", "Re: Questions"),
    ctx(), exp("redact", redact=["email_address"], gone=["sales@brightwater.london"]))
add("pl buyer: address in the Subject",
    mail("Dzień dobry, proszę o odpowiedź na maila z tematu. Tomasz", "kontakt: jan.kowal@onet.pl",
         "pl", direction=B2S),
    ctx("pl", direction=B2S, thread="proactive"), exp("redact", redact=["email_address"],
                                                      gone=["jan.kowal@onet.pl"]))
add("es seller: WhatsApp click-to-chat link in plain text",
    mail("Hola Lucía:\n\nMándame la foto por aquí: https://wa.me/34612345678 y te digo qué pieza "
         "es.\n\nAlba", "RE: Pieza", "es"),
    ctx("es"), exp("redact", redact=["messaging_app_link"], gone=["wa.me/34612345678"]))
add("en seller: Telegram t.me link",
    mail("Hi Nora,\n\nQuickest is Telegram: t.me/brightwater_help - send a video of the noise "
         "there.\n\nHarriet", "Re: Noise"),
    ctx(), exp("redact", redact=["messaging_app_link"], gone=["t.me/brightwater_help"]))
add("it seller: Instagram handle in the signature",
    mail("Buongiorno Marco,\n\nle tazze sono smaltate a mano, quindi le piccole differenze di "
         "colore sono normali.\n\nGiulia\nCeramiche Blu · Instagram: @ceramicheblu_official",
         "R: Colore diverso", "it"),
    ctx("it"), exp("redact", redact=["social_handle"], gone=["@ceramicheblu_official"]))
add("de seller: address with spaces around @ and dots",
    mail("Hallo Herr Keller,\n\nSchreiben Sie an anna . lenz @ gmx . de, ich kümmere mich darum."
         "\n\nAnna", "AW: Frage", "de"),
    ctx("de"), exp("redact", redact=["email_address"], gone=["anna . lenz @ gmx . de",
                                                             "anna.lenz@gmx.de"]))
add("nl buyer (Outlook): signature with a mobile and a tel: link",
    mail("Goedemiddag,\n\nIs de fietsdrager ook geschikt voor een trekhaak met 13-polige stekker?"
         "\n\nMet vriendelijke groet,\nBram de Vries\nMob: +31 6 4321 8765", "Fietsdrager", "nl",
         direction=B2S,
         html=outlook_html("Goedemiddag,\n\nIs de fietsdrager ook geschikt voor een trekhaak met "
                           "13-polige stekker?\n\nMet vriendelijke groet,\nBram de Vries").replace(
             "</div></body>", '<p class="MsoNormal">Mob: <a href="tel:+31643218765">+31 6 4321 '
             '8765</a></p></div></body>')),
    ctx("nl", direction=B2S, thread="proactive"),
    exp("redact", redact=["phone_number"], gone=["+31 6 4321 8765", "+31643218765"],
        keep=["13-polige"]))
add("fr seller: French mobile in international format with dots",
    mail("Bonjour Camille,\n\nPour le montage, n'hésitez pas : +33.6.39.98.45.67.\n\nPaul",
         "Re: Montage", "fr"),
    ctx("fr"), exp("redact", redact=["phone_number"], gone=["+33.6.39.98.45.67"]))
add("en seller: PDF attachment whose text carries a phone number",
    mail("Hi Nora,\n\nThe care card is attached.\n\nHarriet", "Re: Care card",
         atts=[(pdf("Care card\nWipe with a damp cloth.\nQuestions? Call Harriet on 07700 900 812"),
                "application", "pdf", "care-card.pdf")]),
    ctx(), exp("redact", redact=["phone_number"], gone=["07700 900 812"]))
add("de seller: image whose text is a mobile number (OCR)",
    mail("Hallo Herr Keller,\n\nim Bild die Aufbauhinweise.\n\nMartina", "AW: Aufbau", "de",
         atts=[(png_text("Aufbauhilfe am Telefon:\n0171 2345 678"), "image", "png",
                "hinweis.png")]),
    ctx("de"), exp("redact", redact=["phone_number"]))
add("ja seller: WeChat id offered",
    mail("佐藤様\n\n細かいご相談は微信（WeChat）ID：kumo_zakka88 でも承ります。\n\nくも雑貨店",
         "Re: ご相談", "ja"),
    ctx("ja"), exp("redact", redact=["messaging_app_link"], gone=["kumo_zakka88"]))
add("it seller: address split over two lines by the mail client's wrapping",
    mail("Buongiorno Marco,\n\nper il reso scriva pure a giulia.rossi.ceramiche@\nlibero.it "
         "indicando il numero d'ordine.\n\nGiulia", "R: Reso", "it"),
    ctx("it"), exp("redact", redact=["email_address"],
                   gone=["giulia.rossi.ceramiche@libero.it", "libero.it"]))

# ======== round 2: written after the first fixes, measured before any further fix ========
# ---- deliver ----------------------------------------------------------------------------
add("r2 en reply: charger specs, DPD parcel number, 'cheers for the quick reply'",
    mail("Hi Nora,\n\nCheers for the quick reply! The charger is 65W USB-C PD and your laptop draws "
         "45W, so it's absolutely fine. It went out today with DPD, parcel number 15505012345678, "
         "and should arrive Thursday.\n\nHarriet", "Re: Will this charger work?"),
    ctx(), exp("deliver", keep=["15505012345678", "65W"]))
add("r2 de reply: free return until a date, label in the marketplace account, thanks for patience",
    mail("Hallo Herr Keller,\n\nSie können das Paket bis zum 30.06. kostenlos zurückschicken; das "
         "Rücksendeetikett finden Sie in Ihrem Amazon-Konto unter „Meine Bestellungen“. Danke für "
         "Ihre Geduld!\n\nMartina Holzmann", "AW: Rückgabe", "de"),
    ctx("de"), exp("deliver", keep=["30.06."]))
add("r2 fr reply: flooring thickness and coverage",
    mail("Bonjour Camille,\n\nLe parquet fait 14 mm d'épaisseur, en pose flottante ; comptez 2,2 m² "
         "par paquet, donc 9 paquets pour votre pièce de 19 m². Merci et bonne soirée,\nPaul",
         "Re: Combien de paquets ?", "fr"),
    ctx("fr"), exp("deliver", keep=["14 mm", "2,2 m²"]))
add("r2 es reply: thanks for telling us + the missing screw goes out today",
    mail("Hola Lucía:\n\n¡Muchas gracias por avisarnos! Te enviamos hoy mismo el tornillo M4 que "
         "falta, sin coste. Debería llegarte en 48 horas.\n\nUn saludo,\nAlba", "RE: Falta un tornillo",
         "es"),
    ctx("es"), exp("deliver", keep=["M4"]))
add("r2 it reply: sofa arrives unassembled; the courier will call the day before",
    mail("Buongiorno Marco,\n\nle confermo che il divano arriva smontato: i piedini (4 pz, h 12 cm) "
         "sono nella busta sotto la seduta. Il corriere la chiamerà il giorno prima per fissare "
         "l'orario di consegna.\n\nGiulia", "R: Divano", "it"),
    ctx("it"), exp("deliver", keep=["h 12 cm"]))
add("r2 ja reply: charging instructions with a manual page",
    mail("佐藤様\n\nご指摘ありがとうございます。取扱説明書の12ページに記載の通り、初回は8時間充電してからご使用ください。"
         "\nそれでも点灯しない場合は、交換品をお送りします。\n\nくも雑貨店 山田", "Re: 点灯しません", "ja"),
    ctx("ja"), exp("deliver"))
add("r2 pl reply: compatibility and DPD delivery time",
    mail("Dzień dobry,\n\ntak, filtr pasuje do modelu X200 i X250. Wysyłamy kurierem DPD, dostawa "
         "zwykle trwa 1–2 dni robocze.\n\nPozdrawiam\nAnna", "Odp: Czy pasuje?", "pl"),
    ctx("pl"), exp("deliver", keep=["X200"]))
add("r2 nl reply: size runs normal, free exchange within 30 days via the account",
    mail("Hoi Bram,\n\nJa hoor, de maat valt normaal. Bij twijfel kun je kosteloos ruilen binnen 30 "
         "dagen via je Amazon-account.\n\nGroetjes,\nLies", "Re: Maat", "nl"),
    ctx("nl"), exp("deliver"))
add("r2 en-US buyer: pay for faster shipping through the marketplace",
    mail("Hey, any chance you could ship it before the 4th of July? Happy to pay for faster shipping "
         "through Amazon if there's an option. Thanks, Nora", "Ship before July 4?", direction=B2S),
    ctx(direction=B2S, thread="proactive", locale="en-US"), exp("deliver"))
add("r2 de buyer: damaged delivery, asks for a replacement, order number",
    mail("Guten Tag,\n\ndie Lieferung kam beschädigt an (Ecke der Platte abgebrochen). Können Sie mir "
         "einen Ersatz schicken? Bestellnummer 171-9038265-2246109.\n\nJonas Keller", "Beschädigt",
         "de", direction=B2S),
    ctx("de", direction=B2S, thread="proactive", n=1), exp("deliver", keep=["171-9038265-2246109"]))
add("r2 en proactive: cannot ship without the flat number (critical)",
    mail("Hello Nora,\n\nWe can't ship your order until you confirm your flat number: the address "
         "only shows 12 Harbour Road. Please update it in your Amazon account or reply here.\n\n"
         "Brightwater Home", "Missing flat number"),
    ctx(thread="proactive"), exp("deliver"))
add("r2 fr reply: happy/unhappy conditions about a solution, refund, no review at all",
    mail("Bonjour Camille,\n\nJe vous envoie une nouvelle housse demain. Si vous êtes satisfaite de la "
         "solution, parfait ; sinon, dites-le-moi et je vous rembourse intégralement.\n\nPaul",
         "Re: Housse tachée", "fr"),
    ctx("fr"), exp("deliver"))
add("r2 en reply: 'if you're happy with' a partial refund instead of a return (no review)",
    mail("Hi Nora,\n\nSorry about the scratch. If you're happy with a partial refund of £8 instead of "
         "sending it back, just say so and I'll process it through Amazon today.\n\nHarriet",
         "Re: Scratch on the side"),
    ctx(), exp("deliver", keep=["£8"]))
add("r2 es reply: 'si no te queda bien' about the fit (no review)",
    mail("Hola Lucía:\n\nLa talla M mide 98 cm de pecho. Si no te queda bien, puedes devolverla sin "
         "problema desde tu cuenta.\n\nAlba", "RE: Talla", "es"),
    ctx("es"), exp("deliver", keep=["98 cm"]))
add("r2 it reply: 'valutare' = decide whether to keep the product with a partial refund",
    mail("Gentile Marco,\n\nci dispiace per il graffio. Può valutare lei se tenere il prodotto con "
         "un rimborso parziale di 15 euro o restituirlo gratuitamente.\n\nGiulia", "R: Graffio", "it"),
    ctx("it"), exp("deliver"))
add("r2 pl buyer: thanks, and asks for a company invoice",
    mail("Dziękuję, wszystko dotarło. Czy mogę prosić o fakturę na firmę? Dane są w zamówieniu. "
         "Tomasz", "Faktura na firmę", "pl", direction=B2S),
    ctx("pl", direction=B2S), exp("deliver"))
# ---- thank_you_only ---------------------------------------------------------------------
add("r2 de proactive: parcel arrived, thanks for shopping, here for questions",
    mail("Hallo Herr Keller,\n\nIhr Paket ist sicher angekommen – das freut uns! Danke, dass Sie bei "
         "uns eingekauft haben. Bei Fragen sind wir gerne da.\n\nHolzmann Werkstatt", "Angekommen!",
         "de"),
    ctx("de", thread="proactive"), exp("reject", reject=["thank_you_only", "shipping_confirmation"]))
add("r2 en-US reply: 'you're so welcome', happy cooking",
    mail("You're so welcome, Nora! Happy cooking!\n\nDana", "Re: Love the pan"),
    ctx(locale="en-US"), exp("reject", reject=["thank_you_only"]))
add("r2 fr proactive: a big thanks and good wishes from the team",
    mail("Bonjour Camille,\n\nUn grand merci pour votre commande ! Toute l'équipe Maison Perrin vous "
         "souhaite une belle journée.\n\nMaison Perrin", "Merci !", "fr"),
    ctx("fr", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("r2 ja reply: polite thanks and 'we look forward to serving you again'",
    mail("佐藤様\n\nご丁寧にありがとうございます。またのご利用を心よりお待ちしております。\n\nくも雑貨店",
         "Re: 届きました", "ja"),
    ctx("ja"), exp("reject", reject=["thank_you_only"]))
add("r2 pl reply: thanks for the kind words, happy shopping",
    mail("Dzień dobry,\n\nbardzo dziękujemy za miłe słowa! Życzymy udanych zakupów.\n\nSklep Lipa",
         "Odp: Super", "pl"),
    ctx("pl"), exp("reject", reject=["thank_you_only"]))
add("r2 es reply: thanks to you, we love that you liked it",
    mail("¡Gracias a ti, Lucía! Nos encanta saber que te ha gustado.\n\nAlba", "RE: Preciosa", "es"),
    ctx("es"), exp("reject", reject=["thank_you_only"]))
add("r2 nl proactive: thanks for the order, cycling fun, questions? we help",
    mail("Hoi Bram,\n\nBedankt voor je bestelling bij FietsFix! We wensen je veel fietsplezier. "
         "Vragen? Wij helpen je graag.\n\nTeam FietsFix", "Bedankt!", "nl"),
    ctx("nl", thread="proactive"), exp("reject", reject=["thank_you_only"]))
add("r2 it proactive: we just wanted to thank you for choosing us",
    mail("Gentile Marco,\n\nvolevamo semplicemente ringraziarla per aver scelto Ceramiche Blu. Per "
         "qualunque necessità siamo a sua disposizione.\n\nCeramiche Blu", "Grazie", "it"),
    ctx("it", thread="proactive"), exp("reject", reject=["thank_you_only"]))
# ---- review_solicitation --------------------------------------------------------------
add("r2 en gating: loving it? share on Amazon; something not right? reply here",
    mail("Hi Nora,\n\nLoving your new lamp? We'd be thrilled if you shared that on Amazon! "
         "Something not right? Reply here and we'll fix it.\n\nHarriet", "Your lamp"),
    ctx(thread="proactive", days=8), exp("reject", reject=["review_solicitation"]))
add("r2 de reply: asks to reconsider the review now that the replacement arrived",
    mail("Hallo Herr Keller,\n\nkönnten Sie Ihre Rezension eventuell noch einmal überdenken, jetzt wo "
         "der Ersatz da ist?\n\nDanke\nMartina", "AW: Ersatz", "de"),
    ctx("de"), exp("reject", reject=["review_solicitation"]))
add("r2 fr: if you liked it, 5 stars would help",
    mail("Bonjour Camille,\n\nVotre satisfaction est notre priorité : si vous avez aimé votre coussin, "
         "une note de 5 étoiles nous aiderait beaucoup.\n\nMaison Perrin", "Votre coussin", "fr"),
    ctx("fr", thread="proactive", days=12), exp("reject", reject=["review_solicitation"]))
add("r2 it gating: if you liked it, your opinion on Amazon; problems, write us first",
    mail("Gentile Marco,\n\nse il prodotto le è piaciuto, ci farebbe molto piacere leggere la sua "
         "opinione sulla pagina di Amazon. In caso di problemi, ci scriva prima qui.\n\nGiulia",
         "La sua tazza", "it"),
    ctx("it", thread="proactive", days=10), exp("reject", reject=["review_solicitation"]))
add("r2 ja reply: asks to delete a low rating",
    mail("佐藤様\n\n交換品をお送りいたしました。大変恐縮ですが、低評価のレビューを削除していただけないでしょうか。\n\nくも雑貨店",
         "Re: 交換", "ja"),
    ctx("ja"), exp("reject", reject=["review_solicitation"]))
add("r2 pl repeat: polite reminder about leaving an opinion (prior=1)",
    mail("Dzień dobry,\n\nuprzejmie przypominamy o możliwości wystawienia opinii o zakupionym "
         "produkcie.\n\nSklep Lipa", "Przypomnienie", "pl"),
    ctx("pl", thread="proactive", prior=1, days=15), exp("reject", reject=["review_solicitation"]))
add("r2 nl reply: would you adjust your review now it's solved",
    mail("Hoi Bram,\n\nZou je jouw review willen aanpassen nu het probleem is opgelost?\n\nLies",
         "Re: Opgelost", "nl"),
    ctx("nl"), exp("reject", reject=["review_solicitation"]))
add("r2 es day 3: neutral request outside the window",
    mail("Hola Lucía:\n\nNos encantaría conocer tu opinión sobre el producto en Amazon.\n\nTienda Alba",
         "Tu opinión", "es"),
    ctx("es", thread="proactive", days=3), exp("reject", reject=["review_solicitation"]))
add("r2 en gating: only happy customers, trouble -> message us instead of reviewing",
    mail("Hi Nora,\n\nOnly happy customers, please: if you had any trouble, message us rather than "
         "leaving a review.\n\nBrightwater Home", "Quick favour"),
    ctx(thread="proactive", days=20), exp("reject", reject=["review_solicitation"]))
# ---- review_incentive -------------------------------------------------------------------
add("r2 en full refund once the review is live",
    mail("Hi Nora,\n\nWe'll refund your order in full once your review is live - just send us a "
         "screenshot.\n\nHarriet", "Re: Lamp"),
    ctx(), exp("reject", reject=["review_incentive"]))
add("r2 de free care kit as a thank-you for a rating",
    mail("Hallo Herr Keller,\n\nals Dankeschön für Ihre Bewertung schicken wir Ihnen ein "
         "Gratis-Pflegeset.\n\nHolzmann Werkstatt", "Kleines Dankeschön", "de"),
    ctx("de", thread="proactive", days=9), exp("reject", reject=["review_incentive"]))
add("r2 es prize draw for each review with a photo",
    mail("Hola Lucía:\n\nPor cada reseña con foto sorteamos una tarjeta regalo de 50 €.\n\nTienda Alba",
         "Sorteo", "es"),
    ctx("es", thread="proactive", days=9), exp("reject", reject=["review_incentive"]))
add("r2 nl voucher for a review",
    mail("Hoi Bram,\n\nSchrijf een review en ontvang een tegoedbon van €5 voor je volgende aankoop.\n\n"
         "FietsFix", "€5 voor jou", "nl"),
    ctx("nl", thread="proactive", days=9), exp("reject", reject=["review_incentive"]))
# ---- promotional ----------------------------------------------------------------------
add("r2 en answer + 'we've just added matching pillowcases, take a look'",
    mail("Hi Nora,\n\nThe duvet cover is 200 x 200 cm and fits a double.\n\nBy the way, we've just "
         "added matching pillowcases to our shop - take a look!\n\nHarriet", "Re: Size"),
    ctx(), exp("reject", reject=["promotional"]))
add("r2 fr answer + visit our Amazon shop to discover our other lamps",
    mail("Bonjour Camille,\n\nL'ampoule est une E27 de 6 W.\n\nN'hésitez pas à visiter notre boutique "
         "Amazon pour découvrir nos autres luminaires.\n\nPaul", "Re: Ampoule", "fr"),
    ctx("fr"), exp("reject", reject=["promotional"]))
add("r2 pl answer + code for 10% on the next order",
    mail("Dzień dobry,\n\nkoc ma wymiary 150 x 200 cm.\n\nPrzy kolejnym zamówieniu z kodem LIPA10 "
         "otrzyma Pan 10% rabatu.\n\nSklep Lipa", "Odp: Wymiary", "pl"),
    ctx("pl"), exp("reject", reject=["promotional"]))
add("r2 ja answer + a store-wide 20% sale",
    mail("佐藤様\n\nこちらの商品は食洗機対応です。\n\nただいま全品20%オフのセールを開催中です。\n\nくも雑貨店",
         "Re: 食洗機", "ja"),
    ctx("ja"), exp("reject", reject=["promotional"]))
add("r2 de answer + 'tip: our new walnut board is now available'",
    mail("Hallo Herr Keller,\n\ndas Brett ist mit Leinöl behandelt.\n\nTipp: Unser neues Schneidebrett "
         "aus Nussbaum ist jetzt erhältlich.\n\nMartina", "AW: Öl", "de"),
    ctx("de"), exp("reject", reject=["promotional"]))
# ---- off_platform ---------------------------------------------------------------------
add("r2 en buyer: pay via PayPal instead",
    mail("Could I pay you via PayPal instead? Amazon keeps declining my card. Nora", "Payment",
         direction=B2S),
    ctx(direction=B2S, thread="proactive"), exp("reject", reject=["off_platform"]))
add("r2 fr buyer: close the sale outside Amazon, by transfer",
    mail("Bonjour, on pourrait conclure la vente en dehors d'Amazon ? Je vous fais un virement. "
         "Camille", "Deuxième lampe", "fr", direction=B2S),
    ctx("fr", direction=B2S, thread="proactive"), exp("reject", reject=["off_platform"]))
add("r2 it seller: order directly from our site, 10% less",
    mail("Gentile Marco,\n\nper i prossimi acquisti può ordinare direttamente dal nostro sito con il "
         "10% in meno.\n\nGiulia", "R: Altri piatti", "it"),
    ctx("it"), exp("reject", reject=["off_platform"]))
add("r2 de seller: call us, the number is on our website",
    mail("Hallo Herr Keller,\n\nrufen Sie uns doch kurz an, dann klären wir das am Telefon – die "
         "Nummer steht auf unserer Website.\n\nMartina", "AW: Maße", "de"),
    ctx("de"), exp("reject", reject=["off_platform"]))
add("r2 pl seller: write to us on Messenger, we answer faster there",
    mail("Dzień dobry,\n\nproszę napisać do nas na Messengerze, tam szybciej odpowiadamy.\n\nAnna",
         "Odp: Pytanie", "pl"),
    ctx("pl"), exp("reject", reject=["off_platform"]))
add("r2 es seller: I'll sell you another directly without going through Amazon",
    mail("Hola Lucía:\n\nSi quieres otra, te la vendo directamente sin pasar por Amazon, más barata.\n\n"
         "Alba", "RE: Otra lámpara", "es"),
    ctx("es"), exp("reject", reject=["off_platform"]))
# ---- contact details ------------------------------------------------------------------
add("r2 en buyer: (at)/(dot) address",
    mail("Hi, can you send the invoice to my email: nora_q(at)proton(dot)me - thanks", "Invoice",
         direction=B2S),
    ctx(direction=B2S), exp("redact", redact=["email_address"],
                            gone=["nora_q(at)proton(dot)me", "nora_q@proton.me"]))
add("r2 fr seller: [arobase] and [point]",
    mail("Bonjour Camille,\n\nÉcrivez-moi : paul.girard [arobase] laposte [point] net\n\nPaul",
         "Re: Photos", "fr"),
    ctx("fr"), exp("redact", redact=["email_address"],
                   gone=["paul.girard [arobase] laposte [point] net", "paul.girard@laposte.net"]))
add("r2 it seller: Milan office number",
    mail("Buongiorno Marco,\n\nmi chiami al +39 02 1234 5678 (ufficio) e vediamo insieme.\n\nGiulia",
         "R: Montaggio", "it"),
    ctx("it"), exp("redact", redact=["phone_number"], gone=["+39 02 1234 5678"]))
add("r2 ja seller: Tokyo landline",
    mail("佐藤様\n\nお急ぎの方は 03-1234-5678 までお電話ください。\n\nくも雑貨店", "Re: 急ぎ", "ja"),
    ctx("ja"), exp("redact", redact=["phone_number"], gone=["03-1234-5678"]))
add("r2 en-US seller: number with dots",
    mail("Hi Nora,\n\nText me at 312.555.0199 when you're home and I'll drop it off.\n\nDana",
         "Re: Pickup"),
    ctx(locale="en-US"), exp("redact", redact=["phone_number"], gone=["312.555.0199"]))
add("r2 nl seller (HTML): mailto behind 'mail ons'",
    mail("Hoi Bram,\n\nMail ons gerust voor de handleiding.\n\nLies", "Re: Handleiding", "nl",
         html='<p>Hoi Bram,</p><p><a href="mailto:lies.devries@ziggo.nl">Mail ons</a> gerust voor de '
              'handleiding.</p><p>Lies</p>'),
    ctx("nl"), exp("redact", redact=["email_address"], gone=["lies.devries@ziggo.nl"]))
add("r2 de seller: mobile fully in number words, grouped",
    mail("Hallo Herr Keller,\n\nmeine Handynummer: null eins fünf eins, zwei drei vier, fünf sechs "
         "sieben acht.\n\nMartina", "AW: Rückruf", "de"),
    ctx("de"), exp("redact", redact=["phone_number"],
                   gone=["null eins fünf eins, zwei drei vier, fünf sechs sieben acht"]))
add("r2 pl buyer: mobile with dashes",
    mail("Dzień dobry, mój numer: 601-234-567, proszę przekazać kurierowi. Tomasz", "Kurier", "pl",
         direction=B2S),
    ctx("pl", direction=B2S), exp("redact", redact=["phone_number"], gone=["601-234-567"]))


def main() -> None:
    for f in HERE.glob("HO-*.eml"):
        f.unlink()
    from relay.policy.evaluation import decoded_text, squash

    labels = []
    for i, (notes, raw, context, expected) in enumerate(CASES, 1):
        cid = f"HO-{i:03d}"
        text = decoded_text(raw)
        keep, gone = expected["must_survive"], expected["must_not_survive"]
        missing = [k for k in keep if squash(k) not in text]
        if missing or (gone and not any(squash(g) in text for g in gone)):
            raise SystemExit(f"{cid} ({notes}): label strings not in the input: {missing or gone}")
        (HERE / f"{cid}.eml").write_bytes(raw)
        labels.append({"id": cid, "file": f"{cid}.eml", "context": context,
                       "expected": expected, "notes": notes})
    (HERE / "labels.json").write_text(json.dumps(labels, ensure_ascii=False, indent=1) + "\n",
                                      encoding="utf-8")
    print(f"{len(labels)} cases written to {HERE}")


if __name__ == "__main__":
    main()
