"""The relay's outcome vocabulary: what was decided, where a delivery stands, why.

Each is an ``enum.StrEnum`` whose values are the strings already stored in the database
(``archive.verdict``, ``archive.direction``, ``deliveries.status``, ``aliases.stands_for``),
so a member compares equal to the stored text and no existing row needs rewriting. Code
that branches on an outcome names a member; the text only appears where it is stored.

``TRANSITIONS`` is the delivery state machine as data: relay.store.queue refuses, in the
UPDATE itself, any state change the table does not list, so a late or duplicate writer
can never move a row backwards (a delivered row queued again, a failed one revived).

``ReasonCode`` says *why* an archive record has its verdict, as a small closed set that
metrics and the API group by; the archive stores it beside the human ``reason`` text
(migration 0007), so nothing ever parses that text back.

Imports nothing of ours and does no I/O (relay.core).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum


class Verdict(StrEnum):
    """An archive record's verdict (``archive.verdict``)."""

    DELIVER = "deliver"  # delivered as written (headers rewritten)
    REDACT = "redact"  # delivered with findings redacted
    HOLD = "hold"  # accepted, waits for ops (relay.store.holds)
    REJECT = "reject"  # refused by a policy rule (5xx)
    REFUSED = "refused"  # refused before or outside the policy (sender, intake, limits)
    TEMPFAIL = "tempfail"  # refused for now (4xx): a rate limit, the storage allowance
    ABSORBED = "absorbed"  # taken in and kept, nothing leaves (a DSN, ops mail unrouted)

    @property
    def delivers(self) -> bool:
        """Whether a record with this verdict has a copy that leaves (now or on release)."""
        return self in (Verdict.DELIVER, Verdict.REDACT, Verdict.HOLD)


class DeliveryStatus(StrEnum):
    """Where one delivery row stands (``deliveries.status``)."""

    QUEUED = "queued"  # waiting for its first attempt
    SENDING = "sending"  # leased to a worker (``claimed_by`` until ``claimed_until``)
    DEFERRED = "deferred"  # a temporary failure; due again at ``next_attempt_at``
    DELIVERED = "delivered"  # the recipient's server answered 250
    FAILED = "failed"  # permanent failure, expiry, or a DSN saying so; the sender was told

    @property
    def due_state(self) -> bool:
        """A state a worker may claim from once ``next_attempt_at`` has come."""
        return self in (DeliveryStatus.QUEUED, DeliveryStatus.DEFERRED)


_S = DeliveryStatus
# state -> the states it may move to. ``sending -> sending`` is a lapsed lease taken over
# by another worker; ``queued/deferred -> delivered`` is a claim that finds the recipient
# already answered 250 (recorded after its claim was lost); ``* -> failed`` also comes
# from a DSN, which may report a failure after the recipient's server accepted the copy.
# Nothing leaves ``failed``: the sender has been told.
TRANSITIONS: Mapping[DeliveryStatus, frozenset[DeliveryStatus]] = {
    _S.QUEUED: frozenset({_S.SENDING, _S.DELIVERED, _S.FAILED}),
    _S.SENDING: frozenset({_S.SENDING, _S.DELIVERED, _S.DEFERRED, _S.FAILED}),
    _S.DEFERRED: frozenset({_S.SENDING, _S.DELIVERED, _S.FAILED}),
    _S.DELIVERED: frozenset({_S.FAILED}),
    _S.FAILED: frozenset(),
}
INITIAL = _S.QUEUED  # the state a delivery row is created in (enqueue)


def may_move(current: DeliveryStatus | str, target: DeliveryStatus | str) -> bool:
    """Whether the state machine allows ``current -> target``."""
    return DeliveryStatus(target) in TRANSITIONS[DeliveryStatus(current)]


def sources(target: DeliveryStatus | str) -> frozenset[DeliveryStatus]:
    """The states from which ``target`` may be entered: the WHERE of every state change."""
    target = DeliveryStatus(target)
    return frozenset(s for s, nexts in TRANSITIONS.items() if target in nexts)


class Direction(StrEnum):
    """Which way a record went (``archive.direction``)."""

    BUYER_TO_SELLER = "buyer-to-seller"
    SELLER_TO_BUYER = "seller-to-buyer"
    NOTICE = "notice"  # a bounce notice we wrote to a sender
    NONE = ""  # ops mail, DSNs: not between the parties of an order


class Role(StrEnum):
    """A party's side of an order (``aliases.stands_for``, ``message_ids.author``)."""

    BUYER = "buyer"
    SELLER = "seller"

    @property
    def other(self) -> Role:
        return Role.SELLER if self is Role.BUYER else Role.BUYER


class ReasonCode(StrEnum):
    """Why a record has its verdict: a closed set, stored in ``archive.reason_code``.

    The free ``reason`` text says the same to a person (and may carry a rule's words);
    this is what is counted. The values are the ``reason`` label of
    ``relay_messages_total``.
    """

    NONE = ""  # delivered or redacted: nothing to explain
    HELD = "held"  # a rule asked for a person to look (relay.store.holds)
    POLICY = "policy"  # a rule rejected it (the rule itself is in the findings)
    STRANGER = "stranger"  # the sender is not a party of the order
    SENDER = "sender"  # a party's address, but authentication refused it
    CO_RECIPIENT = "co-recipient"  # another recipient of the same transaction refused it
    OPTED_OUT = "opted-out"  # the buyer opted out of proactive seller messages
    RATE_LIMIT = "rate-limit"  # a [limits] counter reached its number
    STORAGE = "storage"  # the sender's daily archive allowance is used up
    INTAKE = "intake"  # malformed or over a structure/size limit before any judgement
    BUDGET = "budget"  # checking it needed more CPU time or memory than allowed
    INTERNAL = "internal"  # our own failure while processing it
    NOTICE = "notice"  # a notice we wrote (a failed delivery, a refused hold)
    DSN = "dsn"  # a delivery status report about one of our deliveries
    NOT_DSN = "not-dsn"  # mail to a return path that is not a delivery status report
    OPS = "ops"  # mail to the postmaster / ops mailboxes (relay.smtp.postmaster)
