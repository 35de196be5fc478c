"""Content policy: judge a message in its context and redact or refuse it.

The pipeline only sees :class:`PolicyEngine` and the frozen values in :mod:`.model`.
"""

from __future__ import annotations

from relay.policy.engine import PolicyEngine, PolicyError
from relay.policy.model import Finding, PolicyContext, Verdict

__all__ = ["Finding", "PolicyContext", "PolicyEngine", "PolicyError", "Verdict"]
