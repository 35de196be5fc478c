"""The ``messaging_app_link`` rule: messaging-app links and ids (WhatsApp, Telegram,
Signal, LINE ...) are removed.

Messaging-app domains and schemes, and ids or numbers introduced by a messaging cue.
"""

from __future__ import annotations

from relay.policy.rules.base import Recorded


class MessagingAppLink(Recorded):
    kind = "messaging_app_link"
    name = "link.messaging"
    description = "messaging-app links and ids (WhatsApp, Telegram, Signal, LINE ...) are removed"
