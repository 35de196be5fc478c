"""Approved seller->buyer templates, sent in the buyer's locale through the normal pipeline.

Templates are data (``policies/templates/NAME.toml``: a title, the variables, and one
``[locale]`` table of subject and body per language). ``{order_id}`` comes from the order;
every other placeholder must be given, and nothing else may be.

Sending is in-process, through ``Pipeline.accept`` with the seller's registered address as
From and the buyer alias as recipient, so the message is policy-checked, archived (hash
chain, search index) and queued for the delivery worker exactly like mail from the
seller's own client. Submitting over SMTP to the running relay instead would have to pass
SPF/DKIM/DMARC for the seller's domain from our own host, which it cannot (and must not:
opening that door would let anyone on the host speak for any seller). The caller was
authenticated instead by the API token or by shell access, and the archive records that
(``auth.method = "template"``).
"""

from __future__ import annotations

import secrets
import string
import tomllib
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from relay.clock import utcnow
from relay.core.errors import (
    TemplateBroken,
    TemplateConflict,
    TemplateInvalid,
    TemplateNotFound,
    TemplateRefused,
)
from relay.core.errors import TemplateError as TemplateError
from relay.core.replies import Reply
from relay.mail.parse import Inbound
from relay.pipeline import Pipeline, SenderCheck, SessionInfo, registered_sender
from relay.settings import Settings
from relay.store import orders, secrets_store
from relay.store.archive import session_record_ids
from relay.store.commit import GroupCommitter
from relay.store.resolve import Resolution, resolve_alias

if TYPE_CHECKING:  # a handle passed through to relay.store; no SQL here
    from sqlalchemy.ext.asyncio import AsyncEngine

AUTOMATIC = ("order_id",)
LOCALES = ("en", "de", "fr", "es", "it", "ja")
MAX_VALUE = 2000


def templates_dir() -> Path:
    """Shipped as ``relay/_policies/templates`` in the wheel, ``policies/templates`` here."""
    package = Path(__file__).resolve().parent
    shipped, checkout = package / "_policies", package.parent / "policies"
    for candidate in (shipped / "templates", checkout / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("templates directory not found (broken installation)")


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@dataclass(frozen=True)
class Template:
    name: str
    title: str
    variables: tuple[str, ...]
    texts: dict[str, tuple[str, str]]  # locale -> (subject, body)

    @classmethod
    def load(cls, path: Path) -> Template:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        texts = {
            key: (value["subject"], value["body"].strip() + "\n")
            for key, value in data.items()
            if isinstance(value, dict)
        }
        tpl = cls(path.stem, data["title"], tuple(data.get("variables", [])), texts)
        tpl.check()
        return tpl

    def check(self) -> None:
        """Every locale uses exactly the declared placeholders (plus the automatic ones)."""
        expected = set(self.variables) | set(AUTOMATIC)
        for locale, (subject, body) in self.texts.items():
            found = _placeholders(subject) | _placeholders(body)
            if found - expected or set(self.variables) - found:
                raise TemplateBroken(
                    f"template {self.name} [{locale}] uses {sorted(found)}, "
                    f"declares {sorted(expected)}"
                )

    def pick_locale(self, locale: str) -> str:
        """``de-DE`` -> ``de``; a language we lack falls back to English."""
        lang = locale.split("-")[0].lower()
        return lang if lang in self.texts else "en"

    def render(self, locale: str, order_id: str, given: dict[str, str]) -> tuple[str, str, str]:
        missing = [v for v in self.variables if v not in given]
        if missing:
            raise TemplateInvalid(
                f"template {self.name} needs {', '.join(missing)}", f"vars.{missing[0]}"
            )
        for key, value in given.items():
            if key not in self.variables:
                raise TemplateInvalid(
                    f"template {self.name} has no variable {key!r}"
                    + (" (it is filled in from the order)" if key in AUTOMATIC else ""),
                    f"vars.{key}",
                )
            if len(value) > MAX_VALUE or any(not ch.isprintable() for ch in value):
                raise TemplateInvalid(
                    f"{key}: at most {MAX_VALUE} printable characters, no line breaks",
                    f"vars.{key}",
                )
        lang = self.pick_locale(locale)
        subject, body = self.texts[lang]
        values = {**given, "order_id": order_id}
        return lang, subject.format_map(values), body.format_map(values)


def load_all(directory: Path | None = None) -> dict[str, Template]:
    directory = directory or templates_dir()
    return {p.stem: Template.load(p) for p in sorted(directory.glob("*.toml"))}


def get(name: str, directory: Path | None = None) -> Template:
    found = load_all(directory)
    if name not in found:
        raise TemplateNotFound(
            f"unknown template {name!r}; known: {', '.join(sorted(found))}", "template"
        )
    return found[name]


def build_message(view: orders.OrderView, subject: str, body: str, domain: str) -> bytes:
    """From the seller's registered address to the buyer alias, like the seller's client."""
    msg = EmailMessage(policy=SMTP_POLICY)
    msg["From"] = formataddr((view.seller_name, view.seller)) if view.seller_name else view.seller
    msg["To"] = view.buyer_alias
    msg["Subject"] = subject
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid("template", domain=domain)
    msg.set_content(body)
    return msg.as_bytes()


@dataclass(frozen=True)
class Sent:
    order_id: str
    template: str
    locale: str
    reply: str
    archive_ids: list[int]

    def as_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "template": self.template, "locale": self.locale,
                "reply": self.reply, "archive_ids": self.archive_ids}  # fmt: skip


class TemplateSender:
    """Builds the pipeline once (policy, return-path key) and sends templates through it."""

    def __init__(self, settings: Settings, engine: AsyncEngine) -> None:
        self.settings = settings
        self.engine = engine
        self._pipeline: Pipeline | None = None

    async def _get_pipeline(self) -> Pipeline:
        if self._pipeline is None:
            from relay.service import load_policy

            s = self.settings
            verp_key = (
                bytes.fromhex(s.bounce.secret)
                if s.bounce.secret
                else await secrets_store.get_or_create(self.engine, "verp_key")
            )
            self._pipeline = Pipeline(
                s,
                self.engine,
                GroupCommitter(self.engine),  # never started: each send commits at once
                load_policy(s),
                verp_key=verp_key,
                authenticator=_template_sender,
            )
        return self._pipeline

    async def send(
        self, order_id: str, name: str, given: dict[str, str], locale: str | None = None
    ) -> Sent:
        template = get(name)
        domain = self.settings.relay.domain
        try:
            view = await orders.get_order(self.engine, domain, order_id)
        except orders.OrderError as err:
            raise TemplateNotFound(str(err), "order_id") from None
        lang, subject, body = template.render(locale or view.buyer_locale, view.id, given)
        target = await resolve_alias(self.engine, domain, view.buyer_alias)
        if isinstance(target, Reply):
            raise TemplateConflict(f"order {order_id} is {view.status}", "order_id")
        raw = build_message(view, subject, body, domain)
        session = f"tpl-{secrets.token_hex(8)}"
        info = SessionInfo(session, "127.0.0.1", self.settings.relay.helo_name, view.seller)
        reply = await (await self._get_pipeline()).accept(info, [target], raw)
        ids = await session_record_ids(self.engine, session)
        if reply.code != 250:
            raise TemplateRefused(f"refused: {reply}", "template")
        return Sent(view.id, name, lang, str(reply), ids)


async def _template_sender(
    inbound: Inbound, info: SessionInfo, res: Resolution, sender: str | None
) -> SenderCheck:
    """The From is the seller's registered address (checked as for any mail); the caller
    was authenticated by the API token or the shell, which the archive records."""
    check = await registered_sender(inbound, info, res, sender)
    return SenderCheck(check.refusal, {"method": "template", "session": info.session_id})
