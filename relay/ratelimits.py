"""Abuse controls: which counters a message charges, and what a buyer's opt-out refuses.

Rate limits (``[limits]``, 0 = off) count in the shared table of relay.store.counters:

| limit | counter | charged by |
| --- | --- | --- |
| ``per_party_hour`` / ``per_party_day`` | sender party | each accepted recipient copy |
| ``per_order_day`` | order (both directions) | each accepted recipient copy |
| ``per_ip_minute`` | client address (IPv6 /64) | each accepted recipient copy |
| ``proactive_per_order`` | order, lifetime | a seller copy that answers no recent buyer message |
| ``archive_bytes_per_party_day`` | sender party | archived bytes of a proven sender's message |
| ``stranger_per_alias_hour`` | alias | each sender-check refusal (counted, never refused) |

Party, order, address and proactive counters are charged only once the sender check has
passed, so a stranger can never use up a party's quota. The check and the bump happen
inside the group commit's transaction, under the archive's chain lock (``settle``, called
by relay.store.commit), so a limit trips at its number exactly, across every relay process and
host on the database, for one upsert per group (two when one is refused). A submission over a limit
is dropped from the group: its archive record is kept bounded (header section) with
verdict ``tempfail`` and the session gets ``450 4.7.1`` (the bytes cap: ``452 4.3.1``, or
``552 5.3.4`` for a message larger than the whole allowance).

Once an alias's strangers reach their hourly number, RCPT answers ``450 4.7.1`` at once to
a MAIL FROM whose domain is not aligned with a registered sender of the counterpart; an
aligned sender (the real party, or one forging its domain, whom authentication then
refuses) is still heard, so a flood of strangers never locks the real party out.

A buyer's opt-out (relay.store.optouts) refuses a seller's *proactive* messages with
``550 5.7.1`` naming it; a reply to a buyer message younger than ``reply_window``, and a
message the policy found ``critical``, still go through.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from relay.clock import utcnow
from relay.core.errors import PartyNotFound, RateLimitExceeded
from relay.core.outcomes import ReasonCode, Verdict
from relay.core.replies import Reply
from relay.settings import LimitsSection, Settings
from relay.store import counters, optouts, stats
from relay.store.archive import bounded
from relay.store.counters import Charge

if TYPE_CHECKING:  # handles passed through to relay.store; no SQL here
    from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

log = structlog.get_logger("relay.limits")

MINUTE, HOUR, DAY = 60, 3600, 86400
NO_REPLY_HEADER = "X-Marketplace-No-Reply-Needed"

# limit name -> (counter scope, window seconds)
SCOPES: dict[str, tuple[str, int]] = {
    "per_party_hour": ("party:h", HOUR),
    "per_party_day": ("party:d", DAY),
    "per_order_day": ("order:d", DAY),
    "per_ip_minute": ("ip:m", MINUTE),
    "proactive_per_order": ("proactive", 0),
    "stranger_per_alias_hour": ("stranger:h", HOUR),
    "archive_bytes_per_party_day": ("bytes:d", DAY),
}
PRUNE_EVERY = 3600.0  # seconds between dropping old windows (per process)
_next_prune = 0.0
HIT_SCOPE = "hits:d"  # key "<party id>:<limit>": refusals per party, limit and UTC day

_LATER = "try again later"
_HOUR = "this hour"
REPLIES: dict[str, Reply] = {
    "per_party_hour": Reply(450, "4.7.1", f"Too many messages from this sender {_HOUR}, {_LATER}"),
    "per_party_day": Reply(450, "4.7.1", f"Too many messages from this sender today, {_LATER}"),
    "per_order_day": Reply(450, "4.7.1", f"Too many messages in this order today, {_LATER}"),
    "per_ip_minute": Reply(450, "4.7.1", f"Too many messages from your address, {_LATER}"),
    "proactive_per_order": Reply(
        450, "4.7.1",
        "Too many messages to this buyer that answer none of theirs; reply to a buyer message",
    ),
    "stranger_per_alias_hour": Reply(
        450, "4.7.1", f"Too many messages from unknown senders to this address, {_LATER}"
    ),
    "archive_bytes_per_party_day": Reply(
        452, "4.3.1", "Sender's daily message storage allowance is used up, try again tomorrow"
    ),
}  # fmt: skip
TOO_BIG_FOR_ALLOWANCE = Reply(
    552, "5.3.4", "Message refused: larger than the sender's daily message storage allowance"
)
OPTED_OUT = {
    "order": Reply(
        550, "5.7.1",
        "The buyer has opted out of messages from this seller for this order; "
        "only replies and messages critical to the order are delivered",
    ),
    "party": Reply(
        550, "5.7.1",
        "The buyer has opted out of seller messages; "
        "only replies and messages critical to an order are delivered",
    ),
}  # fmt: skip



def _hit(limit: str) -> None:
    """Count a refusal in ``relay_limit_hits_total`` (imported late: relay.metrics sits
    above relay.store.commit, which imports this module)."""
    from relay.metrics import LIMIT_HITS

    LIMIT_HITS.labels(limit=limit).inc()


LimitExceeded = RateLimitExceeded  # relay.core.errors; the name the commit path knows


def client_key(ip: str) -> str:
    from relay.smtp.gate import client_key as key

    return key(ip)


def mail_domain(address: str) -> str:
    return address.strip().strip("<>").rpartition("@")[2].lower().rstrip(".")


class RateLimits:
    """The decisions of one relay's settings; holds no state but a few metric labels."""

    def __init__(self, settings: Settings) -> None:
        from relay.metrics import LIMIT_SETTING

        self.cfg: LimitsSection = settings.limits
        for name in SCOPES:
            LIMIT_SETTING.labels(limit=name).set(getattr(self.cfg, name))
        LIMIT_SETTING.labels(limit="reply_window_seconds").set(
            self.cfg.reply_window.total_seconds()
        )

    def _charge(self, name: str, key: str, now: datetime, *, amount: int = 1,
                party: str = "") -> Charge | None:
        limit = getattr(self.cfg, name)
        if not limit:
            return None
        scope, seconds = SCOPES[name]
        return Charge(scope, key, counters.window_start(now, seconds), amount, limit, name, party)

    # -- at RCPT ----------------------------------------------------------------------
    async def at_rcpt(
        self, engine: AsyncEngine, res: Any, mail_from: str, now: datetime | None = None
    ) -> Reply | None:
        """450 once the alias's strangers reached their hourly number and this envelope
        sender is not aligned with any registered sender of the counterpart."""
        limit = self.cfg.stranger_per_alias_hour
        if not limit or _aligned(mail_from, res.sender_emails):
            return None
        ident = ("stranger:h", _local(res.alias), counters.window_start(now or utcnow(), HOUR))
        async with stats.ops_reader(engine) as db:
            seen = (await db.counters([ident]))[ident]
        if seen < limit:
            return None
        _hit("stranger_per_alias_hour")
        log.info("limit.hit", limit="stranger_per_alias_hour", order_id=res.order_id)
        return REPLIES["stranger_per_alias_hour"]

    # -- after the sender check and the policy ----------------------------------------
    def is_reply(self, res: Any, index: Any, now: datetime | None = None) -> bool:
        """Does this message answer a message of the party it goes to, written within
        ``reply_window``? (A buyer's message is always a reply to the seller's side.)"""
        answered: datetime | None = index.answered_at(res.stands_for)
        if answered is None:
            return False
        return (now or utcnow()) - answered <= self.cfg.reply_window

    async def opt_out(
        self, engine: AsyncEngine, res: Any, *, reply: bool, findings: Sequence[Any]
    ) -> Reply | None:
        """550 for a seller's proactive, non-critical message to a buyer who opted out."""
        if res.direction != "seller-to-buyer" or reply:
            return None
        if any(getattr(f, "kind", None) == "critical" for f in findings):
            return None
        scope = await optouts.opted_out(engine, res.order_id, res.recipient_party_id)
        if scope is None:
            return None
        log.info("limit.opted_out", scope=scope, order_id=res.order_id)
        _hit(f"opt_out_{scope}")
        return OPTED_OUT[scope]

    def charges(
        self, res: Any, *, client_ip: str, proven: bool, refusal: Reply | None,
        delivering: bool, reply: bool, size: int, delivered_size: int,
        now: datetime | None = None,
    ) -> tuple[Charge, ...]:
        """What one recipient copy charges (see the module table)."""
        now = now or utcnow()
        party = str(res.sender_party_id)
        wanted: list[Charge | None] = []
        if not proven:
            stranger = self._charge("stranger_per_alias_hour", _local(res.alias), now)
            if stranger is not None and refusal is not None and refusal.permanent:
                # the sender check refused it: counted, never refused again at commit
                wanted.append(dataclasses.replace(stranger, limit=0))
        else:
            wanted.append(self._charge("archive_bytes_per_party_day", party, now,
                                       amount=size + delivered_size, party=party))
            if delivering:
                wanted += [
                    self._charge("per_party_hour", party, now, party=party),
                    self._charge("per_party_day", party, now, party=party),
                    self._charge("per_order_day", res.order_id, now, party=party),
                    self._charge("per_ip_minute", client_key(client_ip), now, party=party),
                ]
                if res.direction == "seller-to-buyer" and not reply:
                    wanted.append(self._charge("proactive_per_order", res.order_id, now,
                                               party=party))
        return tuple(c for c in wanted if c is not None)


def _local(alias: str) -> str:
    return alias.rpartition("@")[0].lower()


def _aligned(mail_from: str, senders: Any) -> bool:
    from relay.authn.dmarc import aligned

    domain = mail_domain(mail_from)
    return bool(domain) and any(aligned(domain, mail_domain(s)) for s in senders)


# -- in the group commit's transaction (relay.store.commit) ----------------------------------


async def settle(
    conn: AsyncConnection, submissions: Sequence[Sequence[Any]]
) -> tuple[list[list[Any]], list[LimitExceeded | None]]:
    """Check and charge each submission's entries (relay.store.commit.Entry) under the chain
    lock. A submission over a limit keeps its archive records, bounded to their header
    section and marked ``tempfail`` (or ``refused``), and loses its deliveries; its
    LimitExceeded is returned in its place for the committer to raise in its session."""
    wanted = [[c for e in entries for c in getattr(e, "charges", ())] for entries in submissions]
    if not any(wanted):
        return [list(s) for s in submissions], [None] * len(submissions)
    global _next_prune
    if time.monotonic() >= _next_prune:
        _next_prune = time.monotonic() + PRUNE_EVERY
        await prune(conn)
    over = await counters.charge(conn, wanted)
    out: list[list[Any]] = []
    refusals: list[LimitExceeded | None] = []
    hits: dict[tuple[str, str, int], int] = {}
    for entries, charge in zip(submissions, over, strict=True):
        if charge is None:
            out.append(list(entries))
            refusals.append(None)
            continue
        reply = REPLIES[charge.name]
        if charge.name == "archive_bytes_per_party_day" and charge.limit < sum(
            c.amount for e in entries for c in e.charges if c.ident == charge.ident
        ):
            reply = TOO_BIG_FOR_ALLOWANCE
        out.append([_refused(e, reply) for e in entries])
        refusals.append(LimitExceeded(charge.name, reply))
        _hit(charge.name)
        log.info("limit.hit", limit=charge.name, code=reply.code, recipients=len(entries))
        if charge.party:
            day = counters.window_start(utcnow(), DAY)
            ident = (HIT_SCOPE, f"{charge.party}:{charge.name}", day)
            hits[ident] = hits.get(ident, 0) + 1
    await counters.bump(conn, hits)
    return out, refusals


def _refused(entry: Any, reply: Reply) -> Any:
    record = entry.record
    kept = bounded(record.original, 0)
    storage = reply is TOO_BIG_FOR_ALLOWANCE or reply is REPLIES["archive_bytes_per_party_day"]
    record = dataclasses.replace(
        record,
        verdict=Verdict.TEMPFAIL if reply.code < 500 else Verdict.REFUSED,
        reason=f"{reply.enhanced} {reply.text}",
        reason_code=ReasonCode.STORAGE if storage else ReasonCode.RATE_LIMIT,
        original=kept,
        truncated=record.truncated or len(kept) < len(record.original),
        delivered=None,
        relay_message_id="",
    )
    return dataclasses.replace(
        entry, record=record, outgoing=None, charges=(), no_reply_needed=False
    )


def wants_no_reply(headers: Any, direction: str) -> bool:
    """A buyer's message the marketplace's own UI marked as needing no reply."""
    if direction != "buyer-to-seller":
        return False
    value = headers.get(NO_REPLY_HEADER) if hasattr(headers, "get") else None
    return str(value or "").strip().lower() in ("yes", "true", "1")


# -- housekeeping and ops --------------------------------------------------------------


async def prune(conn: AsyncConnection, now: datetime | None = None) -> int:
    """Windowed counters older than two days are of no use to any limit or report;
    per-minute ones (one row per client address and minute) go after an hour."""
    now = now or utcnow()
    before = counters.window_start(now - timedelta(days=2), DAY)
    minutes = counters.window_start(now - timedelta(hours=1), MINUTE)
    return await counters.prune(conn, before, scopes_before={SCOPES["per_ip_minute"][0]: minutes})


async def party_view(engine: AsyncEngine, settings: Settings, email: str) -> dict[str, Any]:
    """A party's counters against its limits now, and today's refusals by limit."""
    from relay.authn.fromaddr import canonical_address

    cfg = settings.limits
    now = utcnow()
    async with stats.ops_reader(engine) as db:
        found = await db.party(canonical_address(email))
        if found is None:
            raise PartyNotFound(f"no party {email}")
        pid = str(found.party_id)
        order_ids, own_aliases = found.order_ids, found.aliases

        def ident(name: str, key: str) -> tuple[str, str, int]:
            scope, seconds = SCOPES[name]
            return (scope, key, counters.window_start(now, seconds))

        day = counters.window_start(now, DAY)
        party_limits = ("per_party_hour", "per_party_day", "archive_bytes_per_party_day")
        wanted = [ident(n, pid) for n in party_limits]
        wanted += [ident("per_order_day", o) for o in order_ids]
        wanted += [ident("proactive_per_order", o) for o in order_ids]
        wanted += [ident("stranger_per_alias_hour", a) for a in own_aliases]
        wanted += [(HIT_SCOPE, f"{pid}:{n}", day) for n in SCOPES]
        values = await db.counters(wanted)
    out: dict[str, Any] = {
        "party": canonical_address(email),
        "at": now.isoformat(),
        "limits": {n: {"used": values[ident(n, pid)], "limit": getattr(cfg, n)}
                   for n in party_limits},
        "orders": {},
        "strangers_this_hour": {},
        "hits_today": {n: values[(HIT_SCOPE, f"{pid}:{n}", day)] for n in SCOPES
                       if values[(HIT_SCOPE, f"{pid}:{n}", day)]},
    }  # fmt: skip
    for o in order_ids:
        today = values[ident("per_order_day", o)]
        proactive = values[ident("proactive_per_order", o)]
        if today or proactive:
            out["orders"][o] = {
                "today": today, "per_order_day": cfg.per_order_day,
                "proactive": proactive, "proactive_per_order": cfg.proactive_per_order,
            }  # fmt: skip
    for a in own_aliases:
        if values[ident("stranger_per_alias_hour", a)]:
            out["strangers_this_hour"][a] = values[ident("stranger_per_alias_hour", a)]
    out["stranger_per_alias_hour"] = cfg.stranger_per_alias_hour
    return out
