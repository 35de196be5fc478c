"""``relay policy eval``: run a labelled directory exactly by the spec's pass rule.

The decoded-text check reads the delivered message the way the labels were written:
every header RFC 2047-decoded, every MIME part (nested messages too) decoded from its
transfer encoding and charset, HTML as source, entity-unescaped and with tags removed,
other parts as their decoded bytes; whitespace runs count as one space.
"""

from __future__ import annotations

import email
import email.policy
import html
import json
import pathlib
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import regex

from relay.policy.engine import PolicyEngine
from relay.policy.model import PolicyContext, Verdict

_WS = regex.compile(r"\s+")
_TAG = regex.compile(r"<[^>]*>")
LARGE = ("DEV-085.eml", "DEV-086.eml", "DEV-087.eml")


def squash(s: str) -> str:
    return _WS.sub(" ", s)


def _parts(msg: email.message.Message) -> Iterator[email.message.Message]:
    stack = [msg]
    while stack:
        part = stack.pop()
        yield part
        payload = part.get_payload() if part.is_multipart() else None
        if isinstance(payload, list):
            stack.extend(reversed([p for p in payload if isinstance(p, email.message.Message)]))


def decoded_text(raw: bytes) -> str:
    """Everything a reader (or a tool) could recover from ``raw``, whitespace-squashed."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    chunks: list[str] = []
    for part in _parts(msg):
        for _, value in part.items():
            try:
                chunks.append(str(value))
            except Exception:
                chunks.append(repr(value))
        if part.is_multipart():
            continue
        payload = part.get_payload(decode=True)  # bytes or None for a leaf part
        data = payload if isinstance(payload, bytes) else b""
        if part.get_content_maintype() == "text":
            try:
                text = data.decode(part.get_content_charset() or "utf-8", errors="replace")
            except LookupError:
                text = data.decode("utf-8", errors="replace")
            if part.get_content_subtype() == "html":
                chunks += [text, html.unescape(text), html.unescape(_TAG.sub(" ", text))]
            else:
                chunks.append(text)
        else:
            chunks.append(data.decode("latin-1"))
    return squash("\n".join(chunks))


@dataclass
class CaseResult:
    id: str
    passed: bool
    action: str
    expected: str
    problems: list[str] = field(default_factory=list)
    found: set[str] = field(default_factory=set)
    wanted: set[str] = field(default_factory=set)


def judge_case(case: dict[str, Any], verdict: Verdict) -> CaseResult:
    exp = case["expected"]
    res = CaseResult(case["id"], True, verdict.action, exp["action"])
    res.found = {f.kind for f in verdict.findings if f.action in ("redact", "reject")}
    res.wanted = set(exp.get("redact", [])) | set(exp.get("reject", []))
    held_ok = (verdict.action == "hold" and exp["action"] == "reject"
               and bool(exp.get("hold_ok")))   # the decision needs text out of an image
    if verdict.action != exp["action"] and not held_ok:
        res.problems.append(f"action {verdict.action}, expected {exp['action']}")
    redacted = {f.kind for f in verdict.findings if f.action == "redact"}
    for kind in exp.get("redact", []):
        if kind not in redacted:
            res.problems.append(f"no redact finding of kind {kind}")
    if exp["action"] == "reject" and exp.get("reject") and not held_ok:
        rejected = {f.kind for f in verdict.reject_findings}
        if not rejected & set(exp["reject"]):
            res.problems.append(f"none of {exp['reject']} among reject findings")
    if verdict.message is not None and exp["action"] in ("deliver", "redact", "hold"):
        text = decoded_text(verdict.message)
        for s in exp.get("must_not_survive", []):
            if squash(s) in text:
                res.problems.append(f"survived: {s!r}")
        for s in exp.get("must_survive", []):
            if squash(s) not in text:
                res.problems.append(f"missing: {s!r}")
    res.passed = not res.problems
    return res


def _large_dir(directory: pathlib.Path, missing: list[str]) -> pathlib.Path | None:
    script = directory / "make_large.py"
    if not missing or not script.exists():
        return None
    out = pathlib.Path(tempfile.mkdtemp(prefix="relay-policy-large-"))
    subprocess.run([sys.executable, str(script), "--out-dir", str(out)], check=True,
                   capture_output=True, timeout=300)
    return out


def run_eval(directory: pathlib.Path, engine: PolicyEngine) -> tuple[list[CaseResult], list[str]]:
    """Results per case plus the report lines (last: ``policy: P/N cases pass (X%)``)."""
    cases = json.loads((directory / "labels.json").read_text(encoding="utf-8"))
    missing = [c["file"] for c in cases if not (directory / c["file"]).exists()]
    extra = _large_dir(directory, [m for m in missing if m in LARGE])
    results: list[CaseResult] = []
    lines: list[str] = []
    for case in cases:
        path = directory / case["file"]
        if not path.exists() and extra is not None:
            path = extra / case["file"]
        if not path.exists():
            res = CaseResult(case["id"], False, "-", case["expected"]["action"], ["file missing"])
        else:
            ctx = PolicyContext(**case["context"])
            res = judge_case(case, engine.evaluate(path.read_bytes(), ctx))
        results.append(res)
        if not res.passed:
            lines.append(f"FAIL {res.id}: " + "; ".join(res.problems))
    if extra is not None:
        for f in extra.iterdir():
            f.unlink()
        extra.rmdir()
    lines += kind_table(results)
    passed = sum(r.passed for r in results)
    pct = 100.0 * passed / len(results) if results else 0.0
    lines.append(f"policy: {passed}/{len(results)} cases pass ({pct:.1f}%)")
    return results, lines


def kind_table(results: list[CaseResult]) -> list[str]:
    tp: Counter[str] = Counter()
    wanted: Counter[str] = Counter()
    found: Counter[str] = Counter()
    for r in results:
        for k in r.wanted:
            wanted[k] += 1
            tp[k] += k in r.found
        for k in r.found:
            found[k] += 1
    lines = [f"{'kind':<24} {'recall':>10} {'precision':>10}"]
    for k in sorted(set(wanted) | set(found)):
        rec = f"{tp[k]}/{wanted[k]}" if wanted[k] else "-"
        prec_tp = sum(1 for r in results if k in r.found and k in r.wanted)
        prec = f"{prec_tp}/{found[k]}" if found[k] else "-"
        lines.append(f"{k:<24} {rec:>10} {prec:>10}")
    return lines
