"""Policy file: TOML validated with pydantic (unknown keys refused) plus compiled lexicons.

A typo in a policy file silently weakens what the relay blocks, so every key is checked at
load and the error names the key (``actions.promotionl: unknown key``).
"""

from __future__ import annotations

import pathlib
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias

import regex
from pydantic import BaseModel, ConfigDict, Field, ValidationError

import relay
from relay.core.errors import PolicyError as PolicyError

KindAction = Literal["allow", "redact", "hold", "reject"]
# A lexicon pattern is compiled by the stdlib where it can (faster), else by ``regex``.
Pattern: TypeAlias = "re.Pattern[str] | regex.Pattern[str]"
Match: TypeAlias = "re.Match[str] | regex.Match[str]"

LEXICON_KEYS = (
    "phone_cue", "personal_cue", "service_cue", "id_label", "strong_id_label", "thanks",
    "contact_offer",
    "well_wishes", "shipping_confirmation", "promotional", "promotional_weak", "review_word",
    "review_request",
    "review_positive", "review_selective", "review_edit", "review_incentive", "off_platform",
    "opt_out", "important_tag", "critical", "messaging_cue", "social_cue", "username_cue",
    "email_at", "email_at_weak", "email_at_bracketed", "email_dot", "at_prose",
    "happy_condition", "unhappy_condition", "contact_first", "review_target", "courtesy",
    "upsell",
    "critical_cancellation", "critical_delivery", "critical_return", "critical_safety",
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Domains(_Strict):
    marketplace: list[str] = Field(default_factory=list)
    carriers: list[str] = Field(default_factory=list)
    allow: list[str] = Field(default_factory=list)
    messaging: list[str] = Field(default_factory=list)
    social: list[str] = Field(default_factory=list)
    shorteners: list[str] = Field(default_factory=list)


class Phones(_Strict):
    allowed_numbers: list[str] = Field(default_factory=list)
    extra_regions: list[str] = Field(default_factory=lambda: ["US"])


class Limits(_Strict):
    max_attachment_bytes: int = Field(default=10 * 1024 * 1024, gt=0)
    max_depth: int = Field(default=12, gt=0)
    max_parts: int = Field(default=500, gt=0)
    max_header_bytes: int = Field(default=262144, gt=0)
    max_header_field_bytes: int = Field(default=65536, gt=0)
    max_html_bytes: int = Field(default=1_000_000, gt=0)
    max_text_bytes: int = Field(default=1_000_000, gt=0)
    max_total_text_bytes: int = Field(default=1_500_000, gt=0)


class Attachments(_Strict):
    # content types (relay.policy.attachments.TYPES) kept as they are; any type in neither
    # list is removed with a marker
    allowed: list[str] = Field(default_factory=lambda: [
        "pdf", "jpeg", "png", "gif", "webp", "heic", "tiff", "bmp", "text", "csv", "rtf",
        "docx", "xlsx", "pptx", "odt", "ods", "odp", "doc", "xls", "ppt", "zip", "svg",
        "video", "ics"])
    # content types refused as dangerous_attachment
    dangerous: list[str] = Field(default_factory=lambda: [
        "executable", "script", "installer", "office_macro", "onenote", "disk_image",
        "encrypted_archive", "svg_script", "html_form", "cab"])
    # images a seller attaches only to decorate (logos, banners, thank-you art): removed
    decorative_names: str = (
        r"(?i)(?:^|[_\-. ])(?:logo|banner|signature|footer|divider|spacer|icon|badge|social|"
        r"facebook|instagram|twitter|linkedin|pinterest|tiktok|stock|thank[_\- ]?you|danke|"
        r"merci|gracias|grazie|bedankt|dziekuj|dziękuj)")


class Review(_Strict):
    window_min_days: int = Field(default=5, ge=0)
    window_max_days: int = Field(default=30, ge=0)
    max_requests: int = Field(default=1, ge=0)


class Language(_Strict):
    min_letters: int = Field(default=40, ge=0)
    min_confidence: float = Field(default=0.9, ge=0, le=1)
    # below this confidence (and the buyer's language unlikely) the message is held
    hold_below: float = Field(default=0.5, ge=0, le=1)


class Reading(_Strict):
    """Attachment text read by the body's rules, within a budget per message."""

    enabled: bool = True
    ocr: bool = True                      # images through tesseract, when installed
    max_bytes: int = Field(default=16_000_000, gt=0)    # attachment bytes read
    max_chars: int = Field(default=200_000, gt=0)       # text taken from attachments
    max_pages: int = Field(default=200, gt=0)           # PDF pages
    doc_seconds: float = Field(default=3.0, gt=0)       # PDF/Office/ODF text
    ocr_seconds: float = Field(default=8.0, gt=0)       # OCR of images
    ocr_min_confidence: float = Field(default=55.0, ge=0, le=100)
    hold_unreadable: bool = True   # hold (not deliver) what could not be read in full


class Lexicons(_Strict):
    dir: str = "lexicons"
    languages: list[str] = Field(default_factory=lambda: ["en"])


class PolicyFile(_Strict):
    # kind -> action; the kinds are relay.policy.rules.RULES' (checked in load_policy)
    actions: dict[str, KindAction] = Field(default_factory=dict)
    domains: Domains = Field(default_factory=Domains)
    phones: Phones = Field(default_factory=Phones)
    limits: Limits = Field(default_factory=Limits)
    attachments: Attachments = Field(default_factory=Attachments)
    review: Review = Field(default_factory=Review)
    language: Language = Field(default_factory=Language)
    reading: Reading = Field(default_factory=Reading)
    lexicons: Lexicons = Field(default_factory=Lexicons)


class LexiconFile(_Strict):
    digits: dict[str, str] = Field(default_factory=dict)
    phone_cue: list[str] = Field(default_factory=list)
    personal_cue: list[str] = Field(default_factory=list)
    service_cue: list[str] = Field(default_factory=list)
    id_label: list[str] = Field(default_factory=list)
    strong_id_label: list[str] = Field(default_factory=list)
    thanks: list[str] = Field(default_factory=list)
    contact_offer: list[str] = Field(default_factory=list)
    well_wishes: list[str] = Field(default_factory=list)
    shipping_confirmation: list[str] = Field(default_factory=list)
    promotional: list[str] = Field(default_factory=list)
    promotional_weak: list[str] = Field(default_factory=list)
    review_word: list[str] = Field(default_factory=list)
    review_request: list[str] = Field(default_factory=list)
    review_positive: list[str] = Field(default_factory=list)
    review_selective: list[str] = Field(default_factory=list)
    review_edit: list[str] = Field(default_factory=list)
    review_incentive: list[str] = Field(default_factory=list)
    off_platform: list[str] = Field(default_factory=list)
    opt_out: list[str] = Field(default_factory=list)
    important_tag: list[str] = Field(default_factory=list)
    critical: list[str] = Field(default_factory=list)
    messaging_cue: list[str] = Field(default_factory=list)
    social_cue: list[str] = Field(default_factory=list)
    username_cue: list[str] = Field(default_factory=list)
    # spelled-out "@" and "." of e-mail addresses: words, not patterns (matched literally)
    email_at: list[str] = Field(default_factory=list)            # unambiguous ("arroba")
    email_at_weak: list[str] = Field(default_factory=list)       # also a word ("at")
    email_at_bracketed: list[str] = Field(default_factory=list)  # only as "(chez)"
    email_dot: list[str] = Field(default_factory=list)
    at_prose: list[str] = Field(default_factory=list)  # "look at x.de": not a mailbox
    # intent slots (relay.policy.intents): what a sentence conditions on, points at, offers
    happy_condition: list[str] = Field(default_factory=list)
    unhappy_condition: list[str] = Field(default_factory=list)
    contact_first: list[str] = Field(default_factory=list)
    review_target: list[str] = Field(default_factory=list)
    courtesy: list[str] = Field(default_factory=list)
    upsell: list[str] = Field(default_factory=list)
    # critical to the order (relay.policy.critical), one list per category
    critical_cancellation: list[str] = Field(default_factory=list)
    critical_delivery: list[str] = Field(default_factory=list)
    critical_return: list[str] = Field(default_factory=list)
    critical_safety: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Lexicon:
    """All languages merged: one compiled alternation per key, plus the digit words.

    ``patterns`` are case-insensitive. For speed, searches run a case-sensitive copy on
    the lower-cased text (several times faster with large alternations) and the few
    deliberately case-sensitive entries (``(?-i:LINE)``) on the original text.
    """

    patterns: dict[str, regex.Pattern[str]]
    digits: dict[str, str] = field(default_factory=dict)
    fast: dict[str, tuple[Pattern | None, regex.Pattern[str] | None]] = field(
        default_factory=dict)
    words: dict[str, tuple[str, ...]] = field(default_factory=dict)   # raw entries per key

    def _matches(self, key: str, text: str, first: bool) -> list[Match]:
        pat = self.patterns.get(key)
        if pat is None:
            return []
        low = text.lower()
        if len(low) != len(text) or key not in self.fast:
            m: Match | None = pat.search(text) if first else None
            return ([m] if m else []) if first else list(pat.finditer(text))
        lowered, exact = self.fast[key]
        out: list[Match] = []
        for rx, subject in ((lowered, low), (exact, text)):
            if rx is None:
                continue
            if first:
                m = rx.search(subject)
                if m:
                    out.append(m)
            else:
                out.extend(rx.finditer(subject))
        out.sort(key=lambda m: m.start())
        return out[:1] if first else out

    def search(self, key: str, text: str) -> Match | None:
        found = self._matches(key, text, True)
        return found[0] if found else None

    def finditer(self, key: str, text: str) -> list[Match]:
        return self._matches(key, text, False)


@dataclass(frozen=True)
class Policy:
    """A loaded policy: the validated file, its lexicons, and the action of every rule's
    kind (the file's ``[actions]`` over each rule's ``default_action``)."""

    file: PolicyFile
    lexicon: Lexicon
    source: pathlib.Path
    actions: dict[str, KindAction] = field(default_factory=dict)

    def action(self, kind: str) -> KindAction:
        return self.actions.get(kind, "redact")


def shipped_dir() -> pathlib.Path:
    """``relay/_policies`` in a wheel, the top-level ``policies/`` in a source checkout."""
    base = pathlib.Path(relay.__file__).parent
    installed = base / "_policies"
    return installed if installed.exists() else base.parent / "policies"


def _key_of(err: ValidationError, prefix: str = "") -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first["loc"])
    what = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
    return f"{prefix}{key}: {what}"


def _read_toml(path: pathlib.Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise PolicyError(f"policy file not found: {path}") from None
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"{path}: not valid TOML: {err}") from None


def _compile(key: str, pats: list[str], where: str) -> regex.Pattern[str]:
    for p in pats:
        try:
            regex.compile(p)
        except regex.error as err:
            raise PolicyError(f"{where}.{key}: bad pattern {p!r}: {err}") from None
    return regex.compile("|".join(f"(?:{p})" for p in pats), regex.IGNORECASE | regex.V0)


def _lower_pattern(pattern: str) -> str:
    """Lower-case a pattern's literals but not its escapes (``\\W`` must stay ``\\W``)."""
    out = []
    escaped = False
    for ch in pattern:
        out.append(ch if escaped else ch.lower())
        escaped = not escaped and ch == "\\"
    return "".join(out)


def _alternation(pats: list[str]) -> Pattern:
    """One pattern for a lexicon key, as fast as the engines allow, same matches.

    Most entries start with ``\\b``: consecutive ones share a single ``\\b(?:...)`` so the
    branches are tried only at word boundaries, not at every character (2-4x); branch
    order is kept, so leftmost-first picks the same match. The stdlib ``re`` runs these
    alternations 2-3x faster than ``regex``; it is used when it accepts every entry
    (``\\p{...}`` and other ``regex``-only syntax fall back to ``regex``).
    """
    groups: list[str] = []
    run: list[str] = []
    for p in pats:
        if p.startswith("\\b") and not p.startswith("\\b{"):
            run.append(f"(?:{p[2:]})")
            continue
        if run:
            groups.append("\\b(?:" + "|".join(run) + ")")
            run = []
        groups.append(f"(?:{p})")
    if run:
        groups.append("\\b(?:" + "|".join(run) + ")")
    pattern = "|".join(groups)
    try:
        return re.compile(pattern)
    except (re.error, OverflowError, RecursionError):
        return regex.compile(pattern)


def load_policy(path: pathlib.Path | None = None) -> Policy:
    """Read and validate a policy file and its lexicons; raises PolicyError naming the key."""
    path = pathlib.Path(path) if path is not None else shipped_dir() / "default.toml"
    try:
        pf = PolicyFile.model_validate(_read_toml(path))
    except ValidationError as err:
        raise PolicyError(f"{path}: {_key_of(err)}") from None
    from relay.policy.rules import DEFAULT_ACTIONS

    unknown = [k for k in pf.actions if k not in DEFAULT_ACTIONS]
    if unknown:
        raise PolicyError(f"{path}: actions.{unknown[0]}: unknown key")
    actions = {**DEFAULT_ACTIONS, **pf.actions}
    lexdir = pathlib.Path(pf.lexicons.dir)
    if not lexdir.is_absolute():
        lexdir = path.parent / lexdir
        if not lexdir.exists():
            lexdir = shipped_dir() / pf.lexicons.dir
    merged: dict[str, list[str]] = {k: [] for k in LEXICON_KEYS}
    digits: dict[str, str] = {}
    for lang in pf.lexicons.languages:
        lpath = lexdir / f"{lang}.toml"
        try:
            lex = LexiconFile.model_validate(_read_toml(lpath))
        except ValidationError as err:
            raise PolicyError(f"{lpath}: {_key_of(err)}") from None
        for k in LEXICON_KEYS:
            merged[k].extend(getattr(lex, k))
        for word, digit in lex.digits.items():
            if len(digit) != 1 or not digit.isdigit():
                raise PolicyError(f"{lpath}: digits.{word}: must be one digit")
            digits[word.lower()] = digit
    patterns = {k: _compile(k, v, "lexicons") for k, v in merged.items() if v}
    fast = {}
    for k, pats in merged.items():
        if not pats:
            continue
        exact = [p for p in pats if "(?-i:" in p]
        plain = [_lower_pattern(p) for p in pats if "(?-i:" not in p]
        fast[k] = (_alternation(plain) if plain else None,
                   regex.compile("|".join(f"(?:{p})" for p in exact)) if exact else None)
    from relay.policy.attachments import TYPES

    for key in ("allowed", "dangerous"):
        bad = [t for t in getattr(pf.attachments, key) if t not in TYPES]
        if bad:
            raise PolicyError(f"{path}: attachments.{key}: unknown type {bad[0]!r} "
                              f"(one of {', '.join(sorted(TYPES))})")
    try:
        regex.compile(pf.attachments.decorative_names)
    except regex.error as err:
        raise PolicyError(f"{path}: attachments.decorative_names: bad pattern: {err}") from None
    words = {k: tuple(v) for k, v in merged.items()}
    return Policy(pf, Lexicon(patterns, digits, fast, words), path, actions)
