"""The ``wrong_language`` rule (a message kind): seller text not in the buyer's preferred
language (offline language id).
"""

from __future__ import annotations

from relay.policy import language
from relay.policy.detect.view import MessageFinding, MessageView
from relay.policy.rules.base import MessageRule


class WrongLanguage(MessageRule):
    """Seller text not in the buyer's preferred language (offline language id)."""

    kind = "wrong_language"
    name = "wrong_language"
    description = ("seller messages must be written in the buyer's preferred language")

    def judge(self, view: MessageView) -> list[MessageFinding]:
        want = view.ctx.buyer_locale.replace("_", "-").split("-")[0].lower()
        if not want or want not in language.CANDIDATES:
            return []
        cfg = self.policy.file.language
        if language.letters(view.body) < cfg.min_letters:
            return []
        got, conf, probs = language.detect(view.body)
        if got != want and conf >= cfg.min_confidence and probs.get(want, 0.0) < 0.01:
            return [MessageFinding(self.kind, f"written in {got}, buyer reads {want}")]
        if (conf < cfg.hold_below and probs.get(want, 0.0) < 0.5
                and language.prose_letters(view.body) >= 2 * cfg.min_letters):
            # no language stands out: neither "right" nor "wrong" can be claimed
            return [MessageFinding(self.kind, f"language not identified (best {got} "
                                              f"{conf:.2f})", undecided=True)]
        return []
