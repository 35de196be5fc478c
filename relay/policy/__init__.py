"""Content policy: judge a message in its context and redact or refuse it.

The pipeline only sees this interface and the frozen values in :mod:`.model`::

    engine = PolicyEngine.load(path)          # None: the shipped policies/default.toml
    verdict = engine.evaluate(raw, context)   # pure, thread-safe, never raises
    engine.describe()                         # rules for ``relay policy show``

``load`` raises :class:`PolicyError` (a ``ValueError``) naming the bad key of a bad file.
``verdict.message`` is the message to forward (original bytes for deliver, rebuilt bytes
for redact, None for reject); ``verdict.reason`` is the plain 550 sentence naming the rule.
"""

from __future__ import annotations

from relay.policy.engine import PolicyEngine, PolicyError
from relay.policy.model import Finding, PolicyContext, Verdict

__all__ = ["Finding", "PolicyContext", "PolicyEngine", "PolicyError", "Verdict"]
