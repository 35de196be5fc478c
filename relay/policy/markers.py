"""The short markers a reader sees where something was removed."""

from __future__ import annotations

_MARKERS = {
    "email_address": "[email address removed]",
    "phone_number": "[phone number removed]",
    "external_link": "[link removed]",
    "messaging_app_link": "[messaging app contact removed]",
    "social_handle": "[social media handle removed]",
    "opt_out_link": "[unsubscribe link removed]",
    "deceptive_link": "[link removed]",
    "emoji": "",
    "tracking_pixel": "",
    "remote_image": "[image removed]",
    "hidden_content": "",
    "attachment_removed": "[attachment removed]",
}


def marker(kind: str) -> str:
    return _MARKERS.get(kind, "[removed]")
