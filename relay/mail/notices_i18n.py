"""The words of a non-delivery notice in the six template languages (en, de, fr, es, it, ja).

Kept apart from relay.bounce (which decides *whether* and *to whom* a notice goes) so the
texts can be reviewed and extended without touching that logic. The reason sentence is
chosen from the enhanced status code alone (never from the remote server's text, which
quotes addresses); ``relay.bounce.explain`` gives the English one that the archive
records, and ``localized_reason`` maps it to the reader's language.

The notice goes to whoever wrote the message; a seller writes to the buyer in the
buyer's language (the policy refuses anything else), so the order's buyer locale is the
reader's language on both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

LANGUAGES = ("en", "de", "fr", "es", "it", "ja")

# English reason sentences (relay.bounce.explain) -> key.
_REASON_KEYS = {
    "the recipient's mailbox address is no longer valid": "1",
    "the recipient's mailbox is full or unavailable": "2",
    "the recipient's mail system is not accepting mail": "3",
    "the message could not be routed to the recipient's mail system": "4",
    "the recipient's mail system rejected the mail protocol exchange": "5",
    "the recipient's mail system could not accept the message content": "6",
    "the recipient's mail system refused the message for security or policy reasons": "7",
    "the recipient's mail system refused the message permanently": "permanent",
    "the message could not be delivered": "generic",
}
_EXPIRED = re.compile(
    r"^the recipient's mail system could not be reached for (\d+) (day|hour|minute)s?$"
)


@dataclass(frozen=True)
class NoticeText:
    subject: str  # {order}
    intro: str  # {order}
    to: str
    subject_label: str
    sent: str
    reason_label: str
    closing: str  # {marketplace}
    sender_name: str  # {marketplace}
    no_subject: str
    reasons: dict[str, str]
    expired: str  # {n} {unit}
    units: dict[str, tuple[str, str]]  # unit -> (singular, plural)


TEXTS: dict[str, NoticeText] = {
    "en": NoticeText(
        subject="Undelivered message about order {order}",
        intro="Your message about order {order} could not be delivered.",
        to="To", subject_label="Subject", sent="Sent", reason_label="Reason",
        closing="The message is kept in the {marketplace} archive. You can write again "
        "through the same address, or contact {marketplace} support about this order.",
        sender_name="{marketplace} mail delivery", no_subject="(no subject)",
        reasons={k: v for v, k in _REASON_KEYS.items()},
        expired="the recipient's mail system could not be reached for {n} {unit}",
        units={"day": ("day", "days"), "hour": ("hour", "hours"),
               "minute": ("minute", "minutes")},
    ),
    "de": NoticeText(
        subject="Nachricht zur Bestellung {order} nicht zugestellt",
        intro="Ihre Nachricht zur Bestellung {order} konnte nicht zugestellt werden.",
        to="An", subject_label="Betreff", sent="Gesendet", reason_label="Grund",
        closing="Die Nachricht bleibt im Archiv von {marketplace} gespeichert. Sie können "
        "über dieselbe Adresse erneut schreiben oder sich wegen dieser Bestellung an den "
        "Support von {marketplace} wenden.",
        sender_name="{marketplace} Mail-Zustellung", no_subject="(kein Betreff)",
        reasons={
            "1": "die Postfachadresse des Empfängers ist nicht mehr gültig",
            "2": "das Postfach des Empfängers ist voll oder nicht verfügbar",
            "3": "das Mailsystem des Empfängers nimmt keine Nachrichten an",
            "4": "die Nachricht konnte nicht zum Mailsystem des Empfängers geleitet werden",
            "5": "das Mailsystem des Empfängers hat die Übertragung abgelehnt",
            "6": "das Mailsystem des Empfängers konnte den Inhalt der Nachricht nicht annehmen",
            "7": "das Mailsystem des Empfängers hat die Nachricht aus Sicherheits- oder "
                 "Richtliniengründen abgelehnt",
            "permanent": "das Mailsystem des Empfängers hat die Nachricht endgültig abgelehnt",
            "generic": "die Nachricht konnte nicht zugestellt werden",
        },
        expired="das Mailsystem des Empfängers war {n} {unit} lang nicht erreichbar",
        units={"day": ("Tag", "Tage"), "hour": ("Stunde", "Stunden"),
               "minute": ("Minute", "Minuten")},
    ),
    "fr": NoticeText(
        subject="Message non distribué concernant la commande {order}",
        intro="Votre message concernant la commande {order} n'a pas pu être distribué.",
        to="À", subject_label="Objet", sent="Envoyé", reason_label="Motif",
        closing="Le message est conservé dans les archives de {marketplace}. Vous pouvez "
        "écrire à nouveau via la même adresse ou contacter le support de {marketplace} "
        "au sujet de cette commande.",
        sender_name="Distribution du courrier {marketplace}", no_subject="(sans objet)",
        reasons={
            "1": "l'adresse de la boîte aux lettres du destinataire n'est plus valide",
            "2": "la boîte aux lettres du destinataire est pleine ou indisponible",
            "3": "le système de messagerie du destinataire n'accepte pas de courrier",
            "4": "le message n'a pas pu être acheminé vers le système de messagerie du "
                 "destinataire",
            "5": "le système de messagerie du destinataire a refusé l'échange",
            "6": "le système de messagerie du destinataire n'a pas pu accepter le contenu "
                 "du message",
            "7": "le système de messagerie du destinataire a refusé le message pour des "
                 "raisons de sécurité ou de politique",
            "permanent": "le système de messagerie du destinataire a définitivement refusé "
                         "le message",
            "generic": "le message n'a pas pu être distribué",
        },
        expired="le système de messagerie du destinataire est resté injoignable pendant "
        "{n} {unit}",
        units={"day": ("jour", "jours"), "hour": ("heure", "heures"),
               "minute": ("minute", "minutes")},
    ),
    "es": NoticeText(
        subject="Mensaje no entregado sobre el pedido {order}",
        intro="Su mensaje sobre el pedido {order} no se pudo entregar.",
        to="Para", subject_label="Asunto", sent="Enviado", reason_label="Motivo",
        closing="El mensaje se conserva en el archivo de {marketplace}. Puede volver a "
        "escribir a través de la misma dirección o contactar con el soporte de "
        "{marketplace} sobre este pedido.",
        sender_name="Entrega de correo de {marketplace}", no_subject="(sin asunto)",
        reasons={
            "1": "la dirección del buzón del destinatario ya no es válida",
            "2": "el buzón del destinatario está lleno o no está disponible",
            "3": "el sistema de correo del destinatario no acepta mensajes",
            "4": "el mensaje no se pudo encaminar al sistema de correo del destinatario",
            "5": "el sistema de correo del destinatario rechazó el intercambio",
            "6": "el sistema de correo del destinatario no pudo aceptar el contenido del "
                 "mensaje",
            "7": "el sistema de correo del destinatario rechazó el mensaje por motivos de "
                 "seguridad o de política",
            "permanent": "el sistema de correo del destinatario rechazó el mensaje de forma "
                         "definitiva",
            "generic": "el mensaje no se pudo entregar",
        },
        expired="no se pudo contactar con el sistema de correo del destinatario durante "
        "{n} {unit}",
        units={"day": ("día", "días"), "hour": ("hora", "horas"),
               "minute": ("minuto", "minutos")},
    ),
    "it": NoticeText(
        subject="Messaggio non recapitato relativo all'ordine {order}",
        intro="Il tuo messaggio relativo all'ordine {order} non è stato recapitato.",
        to="A", subject_label="Oggetto", sent="Inviato", reason_label="Motivo",
        closing="Il messaggio è conservato nell'archivio di {marketplace}. Puoi scrivere "
        "di nuovo tramite lo stesso indirizzo o contattare l'assistenza di {marketplace} "
        "per questo ordine.",
        sender_name="Recapito posta di {marketplace}", no_subject="(nessun oggetto)",
        reasons={
            "1": "l'indirizzo della casella del destinatario non è più valido",
            "2": "la casella del destinatario è piena o non disponibile",
            "3": "il sistema di posta del destinatario non accetta messaggi",
            "4": "il messaggio non ha potuto raggiungere il sistema di posta del destinatario",
            "5": "il sistema di posta del destinatario ha rifiutato lo scambio",
            "6": "il sistema di posta del destinatario non ha potuto accettare il contenuto "
                 "del messaggio",
            "7": "il sistema di posta del destinatario ha rifiutato il messaggio per motivi "
                 "di sicurezza o di policy",
            "permanent": "il sistema di posta del destinatario ha rifiutato il messaggio in "
                         "modo definitivo",
            "generic": "il messaggio non è stato recapitato",
        },
        expired="il sistema di posta del destinatario non è stato raggiungibile per {n} {unit}",
        units={"day": ("giorno", "giorni"), "hour": ("ora", "ore"),
               "minute": ("minuto", "minuti")},
    ),
    "ja": NoticeText(
        subject="注文 {order} に関するメッセージが配信されませんでした",
        intro="注文 {order} に関するあなたのメッセージは配信できませんでした。",
        to="宛先", subject_label="件名", sent="送信日時", reason_label="理由",
        closing="このメッセージは{marketplace}のアーカイブに保管されています。同じアドレスから"
        "再度送信するか、この注文について{marketplace}のサポートにお問い合わせください。",
        sender_name="{marketplace} メール配信", no_subject="(件名なし)",
        reasons={
            "1": "受信者のメールアドレスは現在無効です",
            "2": "受信者のメールボックスが満杯か利用できません",
            "3": "受信者のメールシステムがメールを受け付けていません",
            "4": "受信者のメールシステムへメッセージを転送できませんでした",
            "5": "受信者のメールシステムが通信を拒否しました",
            "6": "受信者のメールシステムがメッセージの内容を受け付けませんでした",
            "7": "受信者のメールシステムがセキュリティまたはポリシー上の理由でメッセージを"
                 "拒否しました",
            "permanent": "受信者のメールシステムがメッセージを恒久的に拒否しました",
            "generic": "メッセージを配信できませんでした",
        },
        expired="受信者のメールシステムに{n}{unit}の間接続できませんでした",
        units={"day": ("日", "日"), "hour": ("時間", "時間"), "minute": ("分", "分")},
    ),
}


def language_of(locale: str | None) -> str:
    """``de-DE`` -> ``de``; anything outside the six languages -> ``en``."""
    lang = (locale or "").replace("_", "-").split("-")[0].lower()
    return lang if lang in TEXTS else "en"


def text_for(locale: str | None) -> NoticeText:
    return TEXTS[language_of(locale)]


def localized_reason(reason: str, locale: str | None) -> str:
    """The English reason of ``relay.bounce.explain`` in the reader's language."""
    t = text_for(locale)
    key = _REASON_KEYS.get(reason)
    if key is not None:
        return t.reasons[key]
    m = _EXPIRED.match(reason)
    if m:
        n = int(m.group(1))
        singular, plural = t.units[m.group(2)]
        return t.expired.format(n=n, unit=singular if n == 1 else plural)
    return reason if t is TEXTS["en"] else t.reasons["generic"]
