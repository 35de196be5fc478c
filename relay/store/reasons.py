"""The reason code of a record whose producer did not name one (a bridge, to be removed).

Every archive record gets a relay.core.outcomes.ReasonCode at insert (relay.store.ledger),
so metrics and the API count codes. Notices, DSNs and limit refusals name theirs where
they are made. The intake path (relay.pipeline / relay.intake, being rebuilt in the same
step) and the ops mailboxes (relay.smtp.postmaster) do not yet; for those records the code
is derived here, once, at write time, from the verdict and from which *named* reply the
reason repeats, so no reader ever has to. When every producer passes ``reason_code`` this
module goes, and the architecture test's allow-list says so.
"""

from __future__ import annotations

from relay.core import replies
from relay.core.outcomes import ReasonCode, Verdict
from relay.store.archive import Record

_BY_VERDICT = {
    Verdict.DELIVER: ReasonCode.NONE,
    Verdict.REDACT: ReasonCode.NONE,
    Verdict.HOLD: ReasonCode.HELD,
    Verdict.REJECT: ReasonCode.POLICY,
}
_KINDS = {"notice": ReasonCode.NOTICE, "ops": ReasonCode.OPS}
_INTERNAL = "internal processing error"
_CO_RECIPIENT = "another recipient of the same transaction refused it"
_BUDGET = (replies.CPU_BUDGET.text, replies.MEMORY_BUDGET.text, "Message refused: checking it")


def derived(record: Record) -> ReasonCode:
    """The code ``record`` would have named: by kind, by verdict, then by the reply its
    refusal repeats (the sender check writes ``"<enhanced> <text>"``, intake the text)."""
    if record.kind in _KINDS:
        return _KINDS[record.kind]
    verdict = record.verdict
    if verdict in _BY_VERDICT:
        return _BY_VERDICT[Verdict(verdict)]
    if verdict == Verdict.ABSORBED:
        return ReasonCode.DSN if record.kind == "dsn" else ReasonCode.OPS
    reason = record.reason
    if reason == "stranger":
        return ReasonCode.STRANGER
    if reason == _CO_RECIPIENT:
        return ReasonCode.CO_RECIPIENT
    if reason.startswith(_INTERNAL):
        return ReasonCode.INTERNAL
    if reason.startswith(_BUDGET):
        return ReasonCode.BUDGET
    from relay.ratelimits import OPTED_OUT

    if any(reason == r.text for r in OPTED_OUT.values()):
        return ReasonCode.OPTED_OUT
    if reason[:1] in "45" and reason[1:2] == ".":  # "<enhanced> <text>": the sender check
        return ReasonCode.SENDER
    return ReasonCode.INTAKE
