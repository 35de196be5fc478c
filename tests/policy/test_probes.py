# ruff: noqa: E501  (a table of test messages reads best one per line)
"""Unseen-style messages in the eight marketplace languages, one or two per kind.

Written independently of the labelled cases to check that the rules generalise (other
obfuscations, phrasings, carriers, numbers) rather than fit the development set.
"""

from __future__ import annotations

import pytest

from relay.policy import PolicyContext
from relay.policy.evaluation import decoded_text
from tests.policy.helpers import make


def C(d: str = "s", loc: str = "en-GB", thread: str = "reply", prior: int = 0,
      days: int | None = None) -> PolicyContext:
    return PolicyContext(direction="seller-to-buyer" if d == "s" else "buyer-to-seller",
                         order_id="305-1234567-7654321", buyer_locale=loc,
                         thread=thread,  # type: ignore[arg-type]
                         prior_review_requests=prior, days_since_delivery=days)


P = [
 # (expected action, expected kind or None, ctx, text, html, subject, gone)
 ('redact','phone_number',C('s','fr-FR'),"Bonjour, pour toute question appelez-moi au 06.39.98.21.47 ou au +33 (0)6 39 98 21 48. Belle journée",None,'Re: bague',['06.39.98.21.47','21 48']),
 ('redact','phone_number',C('s','ja-JP'),"お問い合わせは私の携帯 ０９０－１２３４－５６７８ までお電話ください。",None,'Re: 注文',['５６７８']),
 ('redact','phone_number',C('s','en-US'),"Text me at five five five, zero one two three, four five six seven? or 555 0123 4567",None,'Re: x',[]),
 ('redact','messaging_app_link',C('s','es-ES'),"Hola, escríbenos por WhatsApp al 612 908 374 y te ayudamos.",None,'Re: pedido',['612 908 374']),
 ('redact','messaging_app_link',C('b','de-DE'),"Hallo, schreiben Sie mir lieber auf Telegram: @max_mueller89",None,'Re: Lieferung',['max_mueller89']),
 ('redact','social_handle',C('s','it-IT'),"Buongiorno, il servizio è in viaggio. Seguici su Instagram: ceramiche.tosca.official",None,'Re: ordine',['ceramiche.tosca.official']),
 ('redact','social_handle',C('s','nl-NL'),"Hoi, het onderdeel is verzonden. Volg ons op TikTok @fietsonderdelen.direct",None,'Re: x',['fietsonderdelen.direct']),
 ('redact','external_link',C('s','de-DE'),"Hallo, die Anleitung finden Sie auf www.velo-teile-sommer.de/anleitung als PDF.",None,'Re: Anleitung',['velo-teile-sommer.de']),
 ('redact','external_link',C('s','pl-PL'),"Dzień dobry, instrukcja jest tutaj: https://bit.ly/3abcDEF pozdrawiamy",None,'Re: x',['bit.ly/3abcDEF']),
 ('redact','email_address',C('b','es-ES'),"Hola, mi correo es lucia.perez arroba gmail punto com por si acaso.",None,'Re: x',['lucia.perez arroba gmail punto com']),
 ('redact','email_address',C('b','en-US'),"Email me: kevin dot marsh at outlook dot com",None,'Re: x',['outlook dot com']),
 ('redact','email_address',C('s','pl-PL'),"Dzień dobry, proszę pisać na adres sklep(małpa)bambini.pl w sprawie zwrotu.",None,'Re: x',['bambini.pl']),
 ('redact','hidden_content',C('s','en-GB'),"Hello, the part ships today. Regards","<p>Hello, the part ships today.</p><p style='color:#ffffff'>Call 020 7946 0999 for deals</p><p>Regards</p>",'Re: x',['7946 0999']),
 ('redact','hidden_content',C('s','de-DE'),"Hallo, das Teil ist unterwegs. Grüße","<html><head><style>.pre{display:none}</style></head><body><span class='pre'>Geheimer Text hier</span><p>Hallo, das Teil ist unterwegs.</p></body></html>",'Re: x',['Geheimer Text']),
 ('redact','tracking_pixel',C('s','en-US'),"Hi, your part shipped today. Thanks","<p>Hi, your part shipped today.</p><img src='https://mandrillapp.com/track/open.php?u=123' width='1' height='1'>",'Re: x',['mandrillapp.com']),
 ('redact','remote_image',C('s','fr-FR'),"Bonjour, voici la photo du collier.","<p>Bonjour, voici la photo du collier.</p><img src='https://cdn.atelier.fr/img/collier.jpg' width='400'>",'Re: x',['cdn.atelier.fr']),
 ('redact','remote_image',C('s','fr-FR'),"Bonjour, voici la photo du collier.","<table><tr><td background='https://cdn.atelier.fr/bg.jpg'>Bonjour, voici la photo du collier.</td></tr></table>",'Re: x',['cdn.atelier.fr']),
 ('redact','opt_out_link',C('s','en-US'),"Hi Rosa, the replacement pieces shipped today.\n\nTo stop receiving these messages reply STOP.",None,'Re: pieces',['reply STOP']),
 ('redact','opt_out_link',C('s','it-IT'),"Buongiorno, il pezzo è stato spedito ieri.\nPer non ricevere più le nostre email clicca qui: https://news.tosca.it/u?x=1",None,'Re: x',['news.tosca.it']),
 ('redact','opt_out_link',C('s','ja-JP'),"高橋様、部品は本日お送りしました。\n配信停止はこちら: https://mail.kamome.jp/stop?id=9",None,'Re: x',['mail.kamome.jp']),
 ('redact','emoji',C('s','de-DE'),"Hallo Frau Keller, die Dichtung ist unterwegs 🚚 Viele Grüße 😀",None,'Re: Dichtung',['🚚','😀']),
 ('deliver',None,C('s','en-US'),"Hi, the set is 4 x 25 cm, costs $29.99 (order 305-1234567-7654321), ships 2025-06-03 09:00-12:00. Call UPS at 1-800-742-5877 if the driver misses you. SKU 4471-2290-88.",None,'Re: set',[]),
 ('deliver',None,C('s','de-DE'),"Guten Tag, die Ersatzteile (Art.-Nr. 4471 2290 8813, Menge 2) kommen am 12.06. Telefonische Hotline des Herstellers: 0800 123 4567. Viele Grüße",None,'Re: Teile',[]),
 ('deliver',None,C('s','fr-FR'),"Bonjour, votre facture n° 2025-00418 (SIRET 123 456 789 00012) est disponible dans votre compte. Montant : 1 249,00 € TTC. Bonne journée",None,'Re: facture',[]),
 ('deliver',None,C('s','es-ES'),"Hola, el paquete pesa 12,5 kg y mide 120 x 60 x 40 cm. Lo recogerá SEUR entre las 9:00 y las 14:00. NIF B12345678. Un saludo",None,'Re: paquete',[]),
 ('deliver',None,C('s','nl-NL'),"Hoi, je bestelling 305-1234567-7654321 is via PostNL onderweg, track & trace 3SABCD1234567. KvK 12345678, btw NL123456789B01. Groet",None,'Re: x',[]),
 ('deliver',None,C('s','pl-PL'),"Dzień dobry, paczka (numer 620123456789012345678901) dotrze jutro. REGON 123456789, kwota 1 299,00 zł. Pozdrawiamy",None,'Re: x',[]),
 ('reject','promotional',C('s','fr-FR',thread='proactive'),"Bonjour, profitez de -20% sur toute la boutique avec le code ETE20 jusqu'à dimanche !",None,'Offre spéciale',[]),
 ('reject','promotional',C('s','it-IT',thread='proactive'),"Buongiorno, le proponiamo anche il nostro set di bicchieri abbinato a soli 29 € in più.",None,'Set abbinato',[]),
 ('reject','promotional',C('s','en-US'),"Hi, the tent poles ship Monday. Also, check out our new ultralight tarp, 15% off for returning customers!",None,'Re: poles',[]),
 ('reject','review_solicitation',C('s','de-DE',thread='proactive',days=10),"Hallo, wenn Sie zufrieden sind, freuen wir uns über eine 5-Sterne-Bewertung!",None,'Ihre Meinung',[]),
 ('reject','review_solicitation',C('s','en-US',thread='proactive',days=12),"Hi, we noticed your 2-star review. Could you please update it now that the issue is fixed?",None,'Your review',[]),
 ('reject','review_solicitation',C('s','nl-NL',thread='proactive',days=40),"Hallo, wil je een eerlijke review schrijven over je loungeset?",None,'Review',[]),
 ('reject','review_incentive',C('s','es-ES',thread='proactive',days=10),"Hola, si nos dejas una reseña te regalamos un juego de brocas.",None,'Tu opinión',[]),
 ('reject','review_incentive',C('s','pl-PL',thread='proactive',days=10),"Dzień dobry, za wystawienie opinii zwrócimy Panu 20 zł.",None,'Opinia',[]),
 ('reject','thank_you_only',C('s','de-DE',thread='proactive'),"Hallo Herr Weigl,\nvielen Dank für Ihre Bestellung! Bei Fragen sind wir gerne für Sie da.\nViele Grüße\nVelo-Teile Sommer",None,'Danke!',[]),
 ('reject','thank_you_only',C('s','en-US',thread='proactive'),"Hi Megan,\nThank you so much for your purchase! We hope you love it. If you have any questions, just let us know.\nSkylark Drones",None,'Thank you!',[]),
 ('reject','shipping_confirmation',C('s','fr-FR',thread='proactive'),"Bonjour,\nVotre commande 305-1234567-7654321 a été expédiée aujourd'hui avec Colissimo. Numéro de suivi : 6A12345678901.\nMerci pour votre achat !",None,'Votre commande est expédiée',[]),
 ('reject','shipping_confirmation',C('s','es-ES',thread='proactive'),"Hola Lucía,\n¡Tu pedido está en camino! Llegará el jueves.\nGracias por tu compra.",None,'Pedido enviado',[]),
 ('reject','off_platform',C('s','de-DE'),"Hallo, das zweite Set kann ich Ihnen auch direkt verkaufen, überweisen Sie einfach 50 € auf mein Konto.",None,'Re: Set',[]),
 ('reject','off_platform',C('b','it-IT'),"Buongiorno, posso pagarvi con un bonifico direttamente e saltare Amazon?",None,'Re: x',[]),
 ('reject','off_platform',C('s','en-GB'),"Hi, next time order directly from our website and save the fees.",None,'Re: x',[]),
 ('reject','wrong_language',C('s','fr-FR'),"Hello Camille, the necklace was shipped yesterday and should arrive on Friday. Kind regards",None,'Re: collier',[]),
 ('reject','wrong_language',C('s','it-IT'),"Hola Giulia, los platos salieron ayer de nuestro almacén y llegarán el viernes. Saludos",None,'Re: piatti',[]),
 ('reject','wrong_language',C('s','pl-PL'),"Hello Piotr, the pump was shipped yesterday with InPost and arrives tomorrow. Regards",None,'Re: pompa',[]),
 ('reject','important_tag_misuse',C('s','fr-FR',thread='proactive'),"Bonjour, découvrez nos conseils pour infuser le thé vert à la bonne température.",None,'[Important] Conseils',[]),
 ('reject','important_tag_misuse',C('s','es-ES',thread='proactive'),"Hola, le recordamos limpiar el taladro después de cada uso.",None,'[Importante] Mantenimiento',[]),
 ('reject','deceptive_link',C('s','de-DE',thread='proactive'),"Hallo, bitte bestätigen Sie Ihre Adresse: https://www.arnazon.de/verify?id=1",None,'Adresse',[]),
 ('reject','deceptive_link',C('s','en-US',thread='proactive'),"Track your parcel: https://www.xn--ups-8cd.com/track",None,'Tracking',[]),
 ('deliver',None,C('s','en-GB',thread='proactive',days=7),"Hello Amelia, your skillet arrived last week. If you have a moment, you can leave a review of the product on the marketplace. Kind regards",None,'Your order',[]),
 ('deliver',None,C('s','de-AT'),"Grüß Gott, die Lieferung erfolgt in KW 24 per Post. Bei Fragen zur Montage rufen Sie bitte die Hotline des Herstellers an: 0800 100 200. Freundliche Grüße",None,'Re: Lieferung',[]),
 ('deliver',None,C('b','fr-FR'),"Bonjour, merci, le colis est bien arrivé mais il manque une vis M6. Pouvez-vous m'en envoyer une ? Merci 😊",None,'Re: vis',[]),
]


@pytest.mark.parametrize("exp, kind, ctx, text, html, subj, gone", P,
                         ids=[f"{i:02d}-{p[0]}-{p[1]}" for i, p in enumerate(P)])
def test_probe(engine, exp, kind, ctx, text, html, subj, gone):
    v = engine.evaluate(make(text, html, subject=subj), ctx)
    found = {f.kind for f in v.findings if f.action in ("redact", "reject")}
    assert v.action == exp, v.findings
    if kind:
        assert kind in found, v.findings
    if v.message is not None:
        out = decoded_text(v.message)
        for g in gone:
            assert g not in out


# deliver traps: numbers, carriers, prices, legit refunds and quotes (no finding may fire)
D = [  # deliver traps
 (C('s','en-US'), "Hi Rosa, your tent (order 305-1234567-7654321) ships via FedEx, tracking 7712 3456 7890, est. delivery 06/12/2025 between 8:00 AM and 12:00 PM. The poles are 2.4 m, the set costs $189.00 + $15.59 tax. ISBN of the manual: 978-3-16-148410-0. Best, Trailhead"),
 (C('s','de-DE'), "Hallo Herr Weigl, Ihre Bestellung 305-1234567-7654321 ist bei DPD unter 01234567890123 unterwegs: https://tracking.dpd.de/status/de_DE/parcel/01234567890123. Modell 2019-2024 passt. Grüße"),
 (C('s','fr-FR'), "Bonjour, le colis Mondial Relay n° 12345678 sera au point relais le 14/06. Horaires : 9h30-19h. Code postal 75011. Prix : 1 249,00 € TTC. Cordialement"),
 (C('s','es-MX'), "Hola Ana, tu pedido 305-1234567-7654321 llegará el 12 de junio entre 9:00 y 14:00. Mide 30 x 20 x 10 cm y pesa 1,2 kg. Saludos"),
 (C('s','it-IT'), "Buongiorno, il corriere BRT consegnerà il pacco (segnacollo 123456789012345) giovedì. Codice fiscale non necessario. Totale 59,90 € IVA inclusa. Cordiali saluti"),
 (C('s','nl-NL'), "Hoi Sanne, je achterlicht (artikel 4006381333931) is vandaag met PostNL verstuurd. Bezorging morgen tussen 14:00 en 16:30. Groet, Ruben"),
 (C('s','pl-PL'), "Dzień dobry, pompa GP-1100 została wysłana kurierem DPD, numer paczki 1234567890123W. Dostawa 12.06.2025 r. między 8:00 a 16:00. Pozdrawiamy"),
 (C('s','ja-JP'), "高橋様\nご注文の商品は佐川急便にて発送いたしました。お問い合わせ番号：1234-5678-9012\nお届け予定：6月12日 午前中\nかもめ電機"),
 (C('b','en-GB'), "Hi, I paid £45.99 on 03/06/2025 and the parcel (Evri 1234567890123456) never came. Can you check? Thanks"),
 (C('b','de-DE'), "Hallo, ich habe die Rechnung Nr. 2025-1234 erhalten, aber die USt-IdNr. DE123456789 fehlt. Können Sie sie ergänzen? Danke"),
 (C('s','en-US'), "Hi Kevin, sorry for the trouble. We've issued a full refund of $34.99 through the marketplace; it should show in 3-5 business days. Best, Skylark"),
 (C('s','de-DE'), "Guten Tag, gerne erstellen wir Ihnen ein Angebot für das Ersatzteil. Die Aktion läuft über den Marktplatz, Sie erhalten dort eine Nachricht. Viele Grüße"),
 (C('s','en-GB'), "Hello, thanks for your message. The buckle is 25 mm wide; we'll send a replacement today by Royal Mail 2nd Class. Kind regards"),
 (C('s','fr-FR'), "Bonjour Julien, merci pour votre retour. Nous avons expédié un nouveau couvercle ce matin, il arrivera sous 48 h. Bonne journée"),
 (C('b','es-ES'), "Hola, ¿me podéis decir si el taladro sirve para hormigón? Gracias 🙏"),
 (C('s','en-US',thread='proactive',days=14), "Hello Megan, we hope the drone is working well. If you'd like, you can share your experience by leaving a review on the product page. Skylark Drones"),
]


@pytest.mark.parametrize("ctx, text", D, ids=[f"deliver-{i:02d}" for i in range(len(D))])
def test_deliver_trap(engine, ctx, text):
    v = engine.evaluate(make(text), ctx)
    assert v.action == "deliver", [f for f in v.findings if f.action != "allow"]


# HTML shapes real clients produce
H = [
 ('deliver', C('s','de-DE'), '<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns="http://www.w3.org/TR/REC-html40"><head><link rel=File-List href="cid:filelist.xml@01D"><style>p.MsoNormal{margin:0cm}</style></head><body><p class=MsoNormal>Hallo Herr Krüger,<o:p></o:p></p><p class=MsoNormal>das Teil ist unterwegs.<o:p></o:p></p><p class=MsoNormal><img width=120 height=40 src="cid:image001.png@01DB.5E2A" alt="Logo"></p></body></html>'),
 ('deliver', C('s','en-US'), '<div dir="ltr">Hi,<div>your order ships today.</div><div><a href="https://www.amazon.com/gp/your-account/order-details?orderID=305-1234567-7654321">Order details</a></div><span class="gmail_signature_prefix">-- </span><div class="gmail_signature">Trailhead</div></div>'),
 ('redact', C('s','en-US'), '<div>Hi, your order ships today.</div><div style="display:none;max-height:0">Buy more at shop.example</div>'),
 ('redact', C('s','en-US'), '<div>Hi, call us: <span>+1&nbsp;312</span><span>&nbsp;555&nbsp;0187</span></div>'),
 ('redact', C('s','en-US'), '<div>Hi, write to <a href="mailto:&#106;o&#64;shop.example">us</a></div>'),
 ('redact', C('s','en-US'), '<div style="background-image:url(https://img.shop.example/bg.png)">Hi, your order ships today.</div>'),
 ('redact', C('s','en-US'), '<picture><source srcset="https://img.shop.example/a.webp 1x"><img src="cid:x"></picture><p>Hi, your order ships today.</p>'),
 ('redact', C('s','en-US'), '<p>Hi, your order ships today.</p><p><font color="#ffffff">WhatsApp +44 7700 900123</font></p>'),
]


@pytest.mark.parametrize("exp, ctx, html", H, ids=[f"html-{i:02d}-{h[0]}" for i, h in enumerate(H)])
def test_html_shapes(engine, exp, ctx, html):
    v = engine.evaluate(make("Hello, your order ships today.", html), ctx)
    assert v.action == exp, v.findings


# message kinds phrased differently in each language (proactive, day 10 after delivery)
KINDS = [
 ('promotional','de-DE','Hallo, nur diese Woche: 25 % auf alle Fahrradlampen im Shop! Viele Grüße'),
 ('promotional','fr-FR','Bonjour, découvrez notre nouvelle collection de bijoux d’automne, livraison offerte dès 50 € !'),
 ('promotional','es-ES','Hola, aprovecha nuestras rebajas de verano: hasta un 40% en toda la tienda.'),
 ('promotional','it-IT','Buongiorno, con il codice AUTUNNO15 ha il 15% di sconto sul prossimo acquisto.'),
 ('promotional','nl-NL','Hoi, deze week 20% korting op alle tuinmeubelen met de code TUIN20!'),
 ('promotional','pl-PL','Dzień dobry, tylko teraz 30% rabatu na wszystkie pompy ogrodowe!'),
 ('promotional','ja-JP','高橋様\n只今、全品20%OFFのセールを開催中です。この機会にぜひご利用ください。'),
 ('promotional','en-US','Hi Rosa, sign up for our newsletter to hear about new gear first!'),
 ('review_solicitation','fr-FR','Bonjour, si vous êtes satisfaite, pourriez-vous nous laisser 5 étoiles ?'),
 ('review_solicitation','es-ES','Hola, ¿nos dejarías una valoración de 5 estrellas? Nos ayudaría mucho.'),
 ('review_solicitation','it-IT','Buongiorno, se è soddisfatta ci lasci una recensione positiva!'),
 ('review_solicitation','pl-PL','Dzień dobry, prosimy o wystawienie pozytywnej opinii.'),
 ('review_solicitation','ja-JP','高橋様\n商品にご満足いただけましたら、星5のレビューをお願いいたします。'),
 ('review_solicitation','nl-NL','Hallo, zou je je negatieve review willen verwijderen nu het probleem is opgelost?'),
 ('review_incentive','en-GB','Hi, leave a review and we will send you a £10 Amazon voucher.'),
 ('review_incentive','fr-FR','Bonjour, en échange de votre avis, nous vous remboursons 5 €.'),
 ('review_incentive','nl-NL','Hallo, voor een review krijg je een cadeaubon van 10 euro.'),
 ('review_incentive','ja-JP','高橋様\nレビューを書いていただいた方に500円分のギフト券をプレゼントします。'),
 ('thank_you_only','en-GB','Hi Amelia,\nThanks again for your order, we really appreciate it!\nBest wishes,\nCopperleaf Kitchen'),
 ('thank_you_only','de-DE','Hallo Frau Keller,\nherzlichen Dank für Ihren Einkauf! Wir wünschen Ihnen viel Freude damit.\nIhr Team'),
 ('thank_you_only','fr-FR','Bonjour Camille,\nMerci beaucoup pour votre confiance ! N’hésitez pas à nous contacter en cas de question.\nInès'),
 ('thank_you_only','pl-PL','Dzień dobry,\nserdecznie dziękujemy za zakupy w naszym sklepie!\nZespół Ogrodnik24'),
 ('shipping_confirmation','de-DE','Hallo Herr Weigl,\nIhre Bestellung wurde heute versandt. Sendungsnummer: 00340434292135311204.\nViele Grüße'),
 ('shipping_confirmation','es-ES','Hola Javier:\nTu pedido ha sido enviado hoy. Número de seguimiento: PQ4F6K0712839450128001M.\nUn saludo'),
 ('shipping_confirmation','fr-FR','Bonjour,\nNous vous confirmons la réception de votre commande 305-1234567-7654321. Elle sera expédiée sous 24 h.\nCordialement'),
 ('shipping_confirmation','ja-JP','高橋様\nご注文の商品を本日発送いたしました。\nかもめ電機'),
 ('off_platform','en-US','Hi, for future orders just email us directly and pay by bank transfer, it is cheaper.'),
 ('off_platform','es-ES','Hola, la próxima vez puedes comprarnos directamente en nuestra web y te sale más barato.'),
 ('off_platform','it-IT','Buongiorno, può pagarci direttamente con PayPal, così evitiamo le commissioni.'),
]


@pytest.mark.parametrize("kind, loc, text", KINDS, ids=[f"{k}-{loc}" for k, loc, _ in KINDS])
def test_message_kind_phrasings(engine, kind, loc, text):
    context = PolicyContext(direction="seller-to-buyer", order_id="305-1234567-7654321",
                            buyer_locale=loc, thread="proactive", days_since_delivery=10)
    v = engine.evaluate(make(text, subject="Info"), context)
    assert kind in {f.kind for f in v.reject_findings}, v.findings


@pytest.mark.parametrize("loc, text", [
    ("de-DE", "Guten Tag, wir bieten Ihnen auch einen kostenlosen Ersatz an, falls der Griff wieder wackelt."),
    ("en-US", "Hi, we also have the blue one in stock if you prefer to exchange it."),
    ("fr-FR", "Bonjour, nous vous proposons également un échange gratuit de la théière."),
    ("en-US", "Hi, the matching screws are included in the box, see page 3 of the manual."),
    ("en-US", "Hi, you can order the spare clip directly on Amazon, it is listed as ASIN B0D7K2MZ4Q."),
    ("fr-FR", "Bonjour, vous pouvez commander directement sur Amazon le couvercle seul."),
    # words of one language that are lexicon entries in another (RIB, iDEAL, blik, note ...)
    ("en-US", "Please note that the refund of $20 will be issued within 3 days."),
    ("en-US", "The power rating is 850 W and the price was €49, as on the invoice."),
    ("en-GB", "This jumper has ribbed cuffs and a rib-knit collar, ideal for winter."),
    ("nl-NL", "Ik heb even een blik geworpen op de foto, het is ideaal voor buiten."),
    ("fr-FR", "Merci Lydia pour votre message, le colis part demain matin."),
    ("es-ES", "Gracias por tu comentario, te devolvemos 10 € hoy mismo por la tapa."),
])
def test_service_offers_are_not_upsells(engine, loc, text):
    context = PolicyContext(direction="seller-to-buyer", order_id="305-1234567-7654321",
                            buyer_locale=loc, thread="reply")
    assert engine.evaluate(make(text), context).action == "deliver"
