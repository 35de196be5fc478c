"""Content policy: judge a message in its context and redact or refuse it.

The pipeline only sees this interface and the frozen values in :mod:`.model`::

    engine = PolicyEngine.load(path)          # None: the shipped policies/default.toml
    verdict = engine.evaluate(raw, context)   # pure, thread-safe, never raises
    engine.describe()                         # rules for ``relay policy show``

``load`` raises :class:`PolicyError` (a ``ValueError``) naming the bad key of a bad file.
``verdict.message`` is the message to forward (original bytes for deliver, rebuilt bytes
for redact, None for reject, the bytes to forward once released for hold);
``verdict.reason`` is the plain 550 sentence naming the rule.

Verdicts: deliver, redact, reject, and ``hold`` when a rule cannot decide (image text it
cannot read, a language it cannot identify, an attachment over the ``[reading]`` budget);
relay.store.holds keeps held messages until ops release or refuse them.

Layout: :mod:`.detect` reads a message once into a document of spans (the MIME tree
decoded once, every text normalised once with an offset map, tokens and HTML resources
recorded with the span they came from); :mod:`.rules` holds one file per rule (kind,
name, description, scope, ``check(document)``) and ``RULES``, the chain; :mod:`.engine`
runs the chain and decides. Actions and lists live in ``policies/*.toml``.

How the parts decide (issue 12):

* tokens (:mod:`.detect.tokens`, :mod:`.detect.html`): contact details after decoding and
  normalising, hidden HTML judged too, spelled-out ``@``/``.`` in every lexicon language,
  bare domains under any public suffix (the Public Suffix List, not a TLD list);
* attachments (:mod:`.attachments`): the real type from the bytes (puremagic plus a look
  inside ZIP/OLE/SVG/HTML) against ``[attachments] allowed`` / ``dangerous``; their text
  (:mod:`.doctext`: PDF, Office, ODF, iCalendar, OCR) is judged by the body's rules;
* message kinds (:mod:`.rules` over :mod:`.intents`): an intent grammar, not a
  classifier. Each sentence is tagged with speech-act slots (a condition on the buyer's
  satisfaction, a pointer to where reviews go, "contact us first", an incentive, courtesy,
  an upsell) from the multilingual lexicons; rules combine slots within a sentence or
  across neighbouring ones (gating = happy-condition next to a review target, or
  unhappy-condition with contact-first). Why: no labelled corpus of real seller mail
  exists to train on; a classifier trained on sentences we write would learn our own
  wording with less control over false positives, while slots are auditable (findings
  name them), extendable by operators in TOML, and cost one scan per slot.
"""

from __future__ import annotations

from relay.policy.engine import PolicyEngine, PolicyError
from relay.policy.model import Finding, PolicyContext, Verdict

__all__ = ["Finding", "PolicyContext", "PolicyEngine", "PolicyError", "Verdict"]
