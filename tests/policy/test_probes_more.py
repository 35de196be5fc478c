# ruff: noqa: E501  (a table of test messages reads best one per line)
"""More unseen-style checks: charsets, nested messages, file names, other languages."""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

from relay.policy import PolicyContext
from relay.policy.evaluation import decoded_text
from tests.policy.helpers import make


def C(d="s", loc="en-GB", thread="reply", prior=0, days=None) -> PolicyContext:
    return PolicyContext(direction="seller-to-buyer" if d == "s" else "buyer-to-seller",
                         order_id="305-1234567-7654321", buyer_locale=loc, thread=thread,
                         prior_review_requests=prior, days_since_delivery=days)


def test_more_probes(engine):
    misses = []

    def chk(name, raw, ctx, exp, kind=None, gone=()):
        v = engine.evaluate(raw, ctx)
        ks = {f.kind for f in v.findings if f.action in ("redact", "reject")}
        bad = v.action != exp or (kind and kind not in ks)
        if v.message:
            t = decoded_text(v.message)
            bad = bad or any(g in t for g in gone)
        if bad:
            misses.append((name, v.action, sorted(ks)))

    # iso-2022-jp body with phone
    m = EmailMessage()
    m['Subject']='Re: 注文'
    m['From']='a@b.example'
    m.set_content('高橋様\n部品は本日発送しました。ご不明な点は携帯 090-1234-5678 までお電話ください。\nかもめ電機', charset='iso-2022-jp')
    chk('iso2022jp', m.as_bytes(policy=SMTP), C('s','ja-JP'), 'redact', 'phone_number', ['090-1234-5678'])
    # nested rfc822 with html and email in From
    inner = EmailMessage()
    inner['From']='Rep <rep.private@gmail.com>'
    inner['Subject']='Re: lift'
    inner.set_content('Call me 973 555 0126')
    inner.add_alternative('<p>Call me <b>973 555 0126</b></p>', subtype='html')
    outer = EmailMessage()
    outer['Subject']='Fwd'
    outer['From']='x@y.example'
    outer.set_content('See attached reply, can you help?')
    outer.add_attachment(inner)
    chk('nested', outer.as_bytes(policy=SMTP), C('b','en-US'), 'redact', 'email_address', ['rep.private@gmail.com', '555 0126'])
    # base64 html with hidden white text on white bg
    chk('white', make('Hello, the part ships today.', '<body style="background:#fff"><p>Hello, the part ships today.</p><p style="color:#FFFFFF;font-size:12px">Shop direct: www.myshop.example</p></body>'), C('s','en-GB'), 'redact', 'hidden_content', ['myshop.example'])
    # attachment name RFC2231 with phone
    chk('fname', make('Hi, invoice attached. Regards', attachments=[(b'%PDF-1.4\n%%EOF', 'application','pdf','rechnung_tel_0151-2345678.pdf')]), C('s','de-DE'), 'redact', 'phone_number', ['2345678'])
    # Spanish whatsapp wa.me in text plain
    chk('wame', make('Hola, para cualquier duda: wa.me/34612908374 Un saludo'), C('s','es-ES'), 'redact', 'messaging_app_link', ['34612908374'])
    # Signal link
    chk('signal', make('Hi, message me at https://signal.me/#p/+447700900123 thanks'), C('b','en-GB'), 'redact', 'messaging_app_link', ['900123'])
    # Telegram handle with cue far
    chk('tg', make('Hallo! Für Fragen: Telegram @velo_sommer_support'), C('s','de-DE'), 'redact', 'messaging_app_link', ['velo_sommer_support'])
    # WeChat id
    # email with [dot] only
    chk('dot', make('Escríbeme a ana.sofia[at]gmail[dot]com por favor'), C('b','es-ES'), 'redact', 'email_address', ['gmail[dot]com'])
    # phone with spaces digit by digit
    chk('spaced', make('Bel me op 0 6 1 2 3 4 5 6 7 8 aub'), C('b','nl-NL'), 'redact', 'phone_number', ['0 6 1 2 3 4 5 6 7 8'])
    # +49 (0)
    chk('plus0', make('Tel.: +49 (0) 151 2345 6789'), C('s','de-DE'), 'redact', 'phone_number', ['2345 6789'])
    # french number words
    # http link to carrier -> external
    chk('httpdhl', make('Sendungsverfolgung: http://www.dhl.de/verfolgen?x=1 Grüße'), C('s','de-DE'), 'redact', 'external_link', ['http://www.dhl.de'])
    # linked image in html with tracking query
    chk('linkimg', make('Hello', '<p>Hello, your order ships today.</p><img src="https://www.shop.example/images/footer.png?utm_source=email&id=9" width="600" height="80">'), C('s','en-GB'), 'redact', 'remote_image', ['footer.png'])
    # gif static inline cid in seller related -> deliver
    # apng
    # promo in subject only
    chk('subjpromo', make('Hello Rosa, your replacement clips are on their way.'), C('s','en-US'), 'deliver')
    chk('subjpromo2', make('Hello Rosa, your replacement clips are on their way.', subject='Re: clips - 20% off your next order!'), C('s','en-US'), 'reject', 'promotional')
    # review request via link to review page with days ok but 'positive'
    chk('5star', make('Hallo, wir würden uns über eine positive Bewertung freuen.'), C('s','de-DE', thread='proactive', days=10), 'reject', 'review_solicitation')
    # thank-you-only in Japanese
    chk('jathanks', make('高橋様\nこの度はご購入いただき誠にありがとうございました。\n今後ともよろしくお願いいたします。\nかもめ電機'), C('s','ja-JP', thread='proactive'), 'reject', 'thank_you_only')
    # it thanks only
    chk('itthanks', make('Gentile cliente,\ngrazie per il suo acquisto! Per qualsiasi domanda restiamo a disposizione.\nCordiali saluti,\nCeramiche Tosca'), C('s','it-IT', thread='proactive'), 'reject', 'thank_you_only')
    # es thanks only
    chk('esthanks', make('Hola Lucía:\n¡Muchas gracias por tu compra! Esperamos que disfrutes de tus aceiteras. Si tienes cualquier duda, escríbenos.\nCasa Oliva'), C('s','es-ES', thread='proactive'), 'reject', 'thank_you_only')
    # nl shipping conf
    chk('nlship', make('Hoi Bram,\nJe bestelling is vandaag verzonden met PostNL. Track & trace: 3SABCD1234567.\nBedankt voor je aankoop!'), C('s','nl-NL', thread='proactive'), 'reject', 'shipping_confirmation')
    # it shipping conf
    chk('itship', make('Gentile cliente,\nil suo ordine è stato spedito oggi con BRT. Consegna prevista: giovedì.\nGrazie!'), C('s','it-IT', thread='proactive'), 'reject', 'shipping_confirmation')
    # pl shipping
    chk('plship', make('Dzień dobry,\nTwoje zamówienie zostało wysłane. Numer przesyłki: 620123456789012345678901.\nDziękujemy!'), C('s','pl-PL', thread='proactive'), 'reject', 'shipping_confirmation')
    # en shipping conf with "dispatched"
    chk('enship', make('Hi Amelia,\nGood news - your skillet has been dispatched today with Royal Mail Tracked 48.\nThanks for shopping with us!'), C('s','en-GB', thread='proactive'), 'reject', 'shipping_confirmation')
    # important misuse it
    chk('itimp', make('Buongiorno, ecco alcuni consigli per la cura della pelle della sua borsa.'), C('s','it-IT', thread='proactive'), 'deliver')
    chk('itimp2', make('Buongiorno, ecco alcuni consigli per la cura della pelle della sua borsa.', subject='[Importante] Cura della borsa'), C('s','it-IT', thread='proactive'), 'reject', 'important_tag_misuse')
    chk('plimp', make('Dzień dobry, kilka porad dotyczących pielęgnacji pompy ogrodowej.', subject='[Ważne] Porady'), C('s','pl-PL', thread='proactive'), 'reject', 'important_tag_misuse')
    chk('nlimp', make('Hallo, een paar tips om je loungeset mooi te houden.', subject='[Belangrijk] Onderhoudstips'), C('s','nl-NL', thread='proactive'), 'reject', 'important_tag_misuse')
    chk('jaimp', make('高橋様\nお手入れ方法のご案内です。', subject='【重要】お手入れ方法'), C('s','ja-JP', thread='proactive'), 'reject', 'important_tag_misuse')
    # off platform ja
    chk('jaoff', make('次回は当店サイトから直接ご購入いただくとお得です。'), C('s','ja-JP'), 'reject', 'off_platform')
    chk('froff', make('Bonjour, pour la prochaine fois, commandez directement sur notre site, c’est moins cher.'), C('s','fr-FR'), 'reject', 'off_platform')
    chk('esoff', make('Hola, ¿te lo puedo pagar por transferencia directamente?'), C('b','es-ES'), 'reject', 'off_platform')
    chk('ploff', make('Dzień dobry, czy mogę zapłacić BLIK-iem bezpośrednio, poza Allegro?'), C('b','pl-PL'), 'reject', 'off_platform')
    assert not misses, misses
