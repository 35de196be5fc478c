"""Reading a message once, off the event loop: the ``parse`` stage's content work.

``read`` runs in a content worker (relay.policy_pool: a process, or a thread with
``policy.workers = 0``): the linear structure scan first (relay.mail.limits), so nothing
quadratic ever sees a message over a limit; then the one parse (relay.mail.parse.intake:
header section, hop count, strict From, decoded Subject); then the text parts the search
index needs, decoded here so the event loop never parses a body. The Message comes back
with its decoded text cached on it (and without the bytes, which the caller has), and
no later stage parses the bytes again.
"""

from __future__ import annotations

from relay.core import replies
from relay.core.replies import Reply
from relay.core.values import Message
from relay.mail.autoreply import is_automatic
from relay.mail.limits import StructureLimits
from relay.mail.limits import check as check_structure
from relay.mail.parse import has_bare_line_ending_or_nul, intake


def read(raw: bytes, max_hops: int, limits: StructureLimits) -> Message | Reply:
    """The Message of ``raw`` with its readable text decoded, or the refusal. The
    Message comes without the bytes (``Message.without_raw``): the caller gives them
    back with ``with_raw(raw)``, so a worker process never copies a message back."""
    if has_bare_line_ending_or_nul(raw):
        return replies.BAD_LINE_ENDINGS
    refusal = check_structure(raw, limits)
    if refusal is not None:
        return refusal
    message = intake(raw, max_hops=max_hops)
    if isinstance(message, Reply):
        return message
    message.readable_text  # noqa: B018  # decoded here, off the loop, and cached on it
    return message.without_raw()  # the caller has the bytes: they need not travel back


def search_text(message: Message) -> tuple[str, bool]:
    """What the archive indexes for search (relay.store.search): the readable text and
    whether it is an automatic reply."""
    return message.readable_text, is_automatic(message)
