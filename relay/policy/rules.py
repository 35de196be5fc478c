"""The rule catalogue: one entry per finding kind, with the wording senders see.

Message kinds are small rule classes in :mod:`.messages` (``check(view) -> findings``).
Token kinds are found together in one pass per part (:mod:`.textscan`, :mod:`.htmlpart`,
:mod:`.attachments`), because scanning a part once per rule would cost too much. This
catalogue names each rule and says *why* it exists, for ``relay policy show`` and for the
550 reply (which names the rule and never echoes the offending token).
"""

from __future__ import annotations

from dataclasses import dataclass

from relay.policy.config import Policy


@dataclass(frozen=True)
class Rule:
    kind: str
    name: str
    description: str
    scope: str = "both directions"


_R = [
    Rule(
        "email_address",
        "contact.email",
        "email addresses other than the relay's aliases are removed",
    ),
    Rule(
        "phone_number",
        "contact.phone",
        "phone numbers are removed, except carrier, manufacturer and warranty service lines",
    ),
    Rule(
        "external_link",
        "link.external",
        "links off the marketplace are removed; https links needed for the order are allowed, "
        "http links never",
    ),
    Rule(
        "messaging_app_link",
        "link.messaging",
        "messaging-app links and ids (WhatsApp, Telegram, Signal, LINE ...) are removed",
    ),
    Rule(
        "social_handle",
        "link.social",
        "social network handles and profile links are removed",
    ),
    Rule(
        "tracking_pixel",
        "html.tracking_pixel",
        "open-tracking pixels and CSS beacons are removed",
    ),
    Rule(
        "remote_image",
        "html.remote_image",
        "remote images are removed because they reveal when and where a message is read",
    ),
    Rule(
        "hidden_content",
        "html.hidden",
        "text hidden from the reader by CSS is removed",
    ),
    Rule(
        "opt_out_link",
        "link.opt_out",
        "unsubscribe and preference-centre links and footers are removed",
    ),
    Rule(
        "emoji",
        "text.emoji",
        "emoji are removed from seller messages",
        "seller-to-buyer",
    ),
    Rule(
        "attachment_removed",
        "attachment.removed",
        "attachments of a kind not allowed (animations, contact cards ...) are removed",
    ),
    Rule(
        "image_metadata",
        "attachment.metadata",
        "GPS and device metadata are stripped from images",
    ),
    Rule(
        "shipping_confirmation",
        "shipping_confirmation",
        "order and shipping confirmations are already sent by the marketplace",
        "seller-to-buyer",
    ),
    Rule(
        "thank_you_only",
        "thank_you_only",
        "messages that only say thank you are not allowed",
        "seller-to-buyer",
    ),
    Rule(
        "promotional",
        "promotional",
        "promotions, coupons and upsells are not allowed in order messages",
        "seller-to-buyer",
    ),
    Rule(
        "review_solicitation",
        "review_solicitation",
        "review requests may not ask for positive or changed reviews and are limited to one "
        "neutral request 5 to 30 days after delivery",
        "seller-to-buyer",
    ),
    Rule(
        "review_incentive",
        "review_incentive",
        "money, refunds, gifts or products may not be offered for a review",
        "seller-to-buyer",
    ),
    Rule(
        "wrong_language",
        "wrong_language",
        "seller messages must be written in the buyer's preferred language",
        "seller-to-buyer",
    ),
    Rule(
        "deceptive_link",
        "deceptive_link",
        "links whose text and target disagree, or that imitate a known domain, are not allowed",
    ),
    Rule(
        "off_platform",
        "off_platform",
        "payments, orders and conversations must stay on the marketplace",
    ),
    Rule(
        "important_tag_misuse",
        "important_tag_misuse",
        "[Important] is only for messages critical to the order",
        "seller-to-buyer",
    ),
    Rule(
        "dangerous_attachment",
        "dangerous_attachment",
        "executables, scripts, double extensions and files whose type lies are not allowed",
    ),
    Rule(
        "attachment_too_large",
        "attachment_too_large",
        "attachments may not exceed the size limit in one message",
    ),
    Rule(
        "critical",
        "critical",
        "critical to the order (cancellation, a delivery or address problem, a return or "
        "refund that needs the buyer, a safety notice): reaches a buyer who opted out",
        "seller-to-buyer",
    ),
]
RULES: dict[str, Rule] = {r.kind: r for r in _R}


def describe_rules(policy: Policy) -> list[dict]:
    actions = policy.file.actions
    return [
        {"name": r.name, "kind": r.kind, "description": r.description,
         "action": getattr(actions, r.kind), "scope": r.scope}
        for r in _R
    ]
