"""The policy engine: read the message into one document, run the chain of rules, decide.

``evaluate`` is pure and CPU-bound; all state is built in ``load`` and never mutated, so
one engine can serve many threads. It never raises: a message it cannot judge safely is
refused with a plain reason.

The path: relay.policy.detect.reader builds the Document (the MIME tree decoded once,
every text span normalised and scanned once, redactions written back to a copy of the
tree); each rule of relay.policy.rules.RULES that binds the message's direction reads the
document and returns records; records become findings with the action the policy gives
their kind, in the order the message was read; the strongest action decides.
"""

from __future__ import annotations

import logging
import pathlib
from typing import Any

from relay.policy import mime
from relay.policy.config import Policy, PolicyError, load_policy
from relay.policy.detect.document import Document
from relay.policy.detect.reader import Reader
from relay.policy.model import Finding, PolicyContext, Verdict, strongest
from relay.policy.rules import KINDS, RULES, Record

__all__ = ["PolicyEngine", "PolicyError"]
log = logging.getLogger("relay.policy")


class PolicyEngine:
    """Judges messages against one loaded policy; immutable after ``load``."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.reader = Reader(policy)
        self.scanner = self.reader.scanner
        self.rules = tuple(rule(policy) for rule in RULES)

    @classmethod
    def load(cls, path: pathlib.Path | None = None) -> PolicyEngine:
        """Load and validate a policy file (None: the shipped default)."""
        return cls(load_policy(path))

    def describe(self) -> list[dict[str, Any]]:
        """The chain, for ``relay policy show``: each rule with its kind's action."""
        return [{"name": r.name, "kind": r.kind, "description": r.description,
                 "action": self.policy.action(r.kind), "scope": r.scope} for r in self.rules]

    # -- evaluation ---------------------------------------------------------------------
    def evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        try:
            return self._evaluate(raw, ctx)
        except mime.Refused as why:
            return Verdict("reject", (), None, f"Message refused by rule structure: {why}")
        except RecursionError:
            return Verdict("reject", (), None,
                           "Message refused by rule structure: the message is nested too deeply")
        except MemoryError:  # over the message's memory budget: relay.policy_pool refuses it
            raise
        except Exception:
            log.exception("policy.evaluate.failed")
            return Verdict("reject", (), None,
                           "Message refused by rule structure: the message could not be checked")

    def _evaluate(self, raw: bytes, ctx: PolicyContext) -> Verdict:
        doc = self.reader.read(raw, ctx)
        records: list[Record] = []
        for rule in self.rules:
            if rule.applies(ctx):
                records += rule.check(doc)
        records.sort(key=lambda r: r.seq)   # as read; ties keep chain order (stable)
        findings = tuple(self._finding(doc, r) for r in records)
        return self._verdict(doc, raw, findings)

    def _finding(self, doc: Document, r: Record) -> Finding:
        return Finding(r.kind, r.rule or KINDS[r.kind].name, doc.action_of(r),
                       r.where, r.excerpt[:200])

    def _verdict(self, doc: Document, raw: bytes, findings: tuple[Finding, ...]) -> Verdict:
        action = strongest([f.action for f in findings])
        if action == "reject":
            first = next(f for f in findings if f.action == "reject")
            return Verdict("reject", findings, None, self.reason(first), doc.timings)
        rebuilt = mime.to_bytes(doc.msg) if doc.changed and doc.msg is not None else raw
        if action == "hold":
            first = next(f for f in findings if f.action == "hold")
            return Verdict("hold", findings, rebuilt, self.reason(first, held=True), doc.timings)
        if action == "redact" and doc.changed:
            return Verdict("redact", findings, rebuilt, "", doc.timings)
        return Verdict(action, findings, raw, "", doc.timings)

    def reason(self, f: Finding, held: bool = False) -> str:
        if held:
            return f"Message held for review by rule {f.rule}: the policy could not decide"
        rule = KINDS.get(f.kind)
        text = rule.description if rule else "content not allowed"
        return f"Message refused by rule {f.rule}: {text}"
