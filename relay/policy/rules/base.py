"""What a rule is: a kind, a name, a description, a scope and a check over the document.

Modelled on GNU Mailman 3's rules (a name, a description, ``check``): each rule is a small
class in a file of its own under :mod:`relay.policy.rules`, and ``RULES`` in its
``__init__`` is the chain. A rule never reads MIME or re-normalises text: it reads the
:class:`~relay.policy.detect.document.Document` that :mod:`relay.policy.detect` builds once
per message, and returns :class:`Record` s. The engine turns records into findings with
the action ``policies/*.toml [actions]`` gives the rule's kind (``default_action`` when the
file says nothing), keeps them in the order the message was read, and decides.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from relay.policy.config import KindAction, Match, Policy
    from relay.policy.detect.document import Document
    from relay.policy.detect.view import MessageFinding, MessageView
    from relay.policy.model import PolicyContext

BOTH = "both directions"


@dataclass(frozen=True)
class Record:
    """One thing a rule found, before the policy's action is attached.

    ``seq`` orders records as the message was read (the first refusing one names the
    rule in the 550 reply); ``action`` set here overrides the policy (``hold`` when a
    rule cannot decide); ``rule`` names a variant of the rule (``attachment.unreadable``).
    """

    kind: str
    where: str
    excerpt: str = ""
    allowed: bool = False
    action: KindAction | None = None
    rule: str = ""
    seq: float = 0


class Rule(ABC):
    """A rule of the chain; subclasses set the class attributes and ``check``."""

    kind: ClassVar[str]
    name: ClassVar[str]
    description: ClassVar[str]
    scope: ClassVar[str] = BOTH
    default_action: ClassVar[KindAction] = "redact"

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.lex = policy.lexicon

    def applies(self, ctx: PolicyContext) -> bool:
        return self.scope == BOTH or self.scope == ctx.direction

    @abstractmethod
    def check(self, doc: Document) -> list[Record]:
        """The records of this rule's kind in ``doc``."""


class Recorded(Rule):
    """A kind found while the document was read (tokens in text spans, HTML resources,
    attachment types): detecting it needs the text or the tree in hand, so
    :mod:`relay.policy.detect` records it with its span once and the rule reads it back."""

    def check(self, doc: Document) -> list[Record]:
        return doc.recorded(self.kind)


class MessageRule(Rule):
    """A message kind: what the message *is*, judged on the document's message view (the
    writer's own words, the subject, attachment text) with the multilingual lexicons."""

    scope: ClassVar[str] = "seller-to-buyer"
    default_action: ClassVar[KindAction] = "reject"

    def hit(self, key: str, text: str) -> str | None:
        m: Match | None = self.lex.search(key, text)
        return m.group() if m else None

    def check(self, doc: Document) -> list[Record]:
        after = doc.next_seq()    # message kinds come after everything read, in chain order
        return [Record(f.kind, "body.text", f.excerpt, f.allowed,
                       "hold" if f.undecided else None, self.name, after)
                for f in self.judge(doc.view)]

    @abstractmethod
    def judge(self, view: MessageView) -> list[MessageFinding]:
        """The findings of this kind in ``view``; empty when the message is fine."""
