"""aiosmtpd hooks: refuse at RCPT whatever can be refused there, hand DATA to the pipeline.

``handle_DATA`` is where a message's path begins; relay.intake's docstring follows it
from here to the commit.

Every reply comes from relay.core.replies. Database trouble at any step answers 451 4.3.0:
the sender's MTA keeps the message and tries again, and nothing is lost.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

import structlog
from aiosmtpd.proxy_protocol import ProxyData
from aiosmtpd.smtp import SMTP

from relay import metrics
from relay.core import replies
from relay.core.values import SessionInfo
from relay.log import mask
from relay.pipeline import Pipeline
from relay.settings import Settings
from relay.smtp.postmaster import OpsMailbox
from relay.smtp.proxy import client_peer
from relay.smtp.session import RelayEnvelope, RelaySession
from relay.store.resolve import Resolution, ops_mailbox, resolve_alias, split_address

log = structlog.get_logger("relay.smtp")


class BounceIntake(Protocol):
    """What the handler needs to accept mail for signed return paths
    (relay.bounces_in.SignedBounces)."""

    async def check_known(self, local: str) -> str | None: ...

    async def accept(self, info: SessionInfo, tokens: list[str], raw: bytes) -> str: ...


class RelayHandler:
    def __init__(
        self,
        settings: Settings,
        pipeline: Pipeline,
        bounces: BounceIntake | None = None,
        ops: OpsMailbox | None = None,
    ) -> None:
        self.settings = settings
        self.pipeline = pipeline
        self.bounces = bounces
        self.ops = ops
        self.accepting = True

    async def handle_EHLO(
        self,
        server: SMTP,
        session: RelaySession,
        envelope: RelayEnvelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        """Advertise XFORWARD to a trusted Postfix only (see relay.smtp.proxy), enhanced status
        codes (every reply has one), and no AUTH: this is an MX, not a submission server."""
        session.host_name = hostname
        responses = [r for r in responses if not r[4:].upper().startswith("AUTH")]
        responses.insert(len(responses) - 1, "250-ENHANCEDSTATUSCODES")
        if getattr(server, "xforward_trusted", False):
            responses.insert(len(responses) - 1, "250-XFORWARD NAME ADDR PORT PROTO HELO SOURCE")
        return responses

    async def handle_PROXY(
        self, server: SMTP, session: RelaySession, envelope: RelayEnvelope, data: ProxyData
    ) -> bool:
        """A valid header from an allowed balancer (the server checked the source): from
        now on the session's peer is the real client, for SPF and the archive alike."""
        peer = client_peer(data)
        if peer is not None:
            session.proxy_peer = session.peer
            session.peer = peer
        log.info(
            "smtp.proxy.accepted",
            version=data.version,
            client=peer[0] if peer else None,
            balancer=str(session.peer[0]) if peer is None else None,
        )
        return True

    async def handle_MAIL(
        self,
        server: SMTP,
        session: RelaySession,
        envelope: RelayEnvelope,
        address: str,
        mail_options: list[str],
    ) -> str:
        if not address.isascii() and not envelope.smtp_utf8:
            return str(replies.NEEDS_SMTPUTF8)  # RFC 6531 3.4; Postfix answers the same
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        envelope.resolutions = []
        envelope.bounce_tokens = []
        envelope.ops_mailboxes = []
        return str(replies.SENDER_OK)

    async def handle_RCPT(
        self,
        server: SMTP,
        session: RelaySession,
        envelope: RelayEnvelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        if not self.accepting:
            reply = replies.SHUTTING_DOWN
        elif len(envelope.rcpt_tos) >= self.settings.smtp.max_recipients:
            reply = replies.TOO_MANY_RECIPIENTS
        elif not address.isascii() and not envelope.smtp_utf8:
            reply = replies.NEEDS_SMTPUTF8
        else:
            reply = await self._rcpt(envelope, address)
        if reply.code >= 400:
            metrics.observe_rcpt_refused(reply.enhanced)
            log.info(
                "smtp.rcpt.refused", code=reply.code, enhanced=reply.enhanced, rcpt=mask(address)
            )
            return str(reply)
        envelope.rcpt_tos.append(address)
        return str(reply)

    async def _rcpt(self, envelope: RelayEnvelope, address: str) -> replies.Reply:
        relay = self.settings.relay
        # The ops mailbox shares no transaction with party mail: one DATA reply cannot
        # honestly answer for both (a refused alias beside a delivered postmaster copy).
        ops: list[str] = getattr(envelope, "ops_mailboxes", [])
        mailbox = ops_mailbox(address, relay.domain) if self.ops is not None else None
        if mailbox is not None:
            if len(ops) < len(envelope.rcpt_tos):
                return replies.OPS_SEPARATELY
            ops.append(mailbox)
            return replies.RECIPIENT_OK
        try:
            local, domain = split_address(address)
        except ValueError:
            return replies.SYNTAX_ADDRESS
        try:
            if self.bounces is not None and domain == relay.domain:
                token = await self.bounces.check_known(local)
                if token is not None:
                    if ops:
                        return replies.OPS_SEPARATELY
                    envelope.bounce_tokens.append(token)
                    return replies.RECIPIENT_OK
            res = await resolve_alias(self.pipeline.engine, relay.domain, address)
        except Exception as err:
            log.error("smtp.rcpt.db_error", error=type(err).__name__)
            return replies.TEMP_FAILURE
        if isinstance(res, replies.Reply):
            return res
        if ops:
            return replies.OPS_SEPARATELY
        try:  # an alias flooded by strangers: unaligned senders wait (relay.ratelimits)
            limited = await self.pipeline.limits.at_rcpt(
                self.pipeline.engine, res, envelope.mail_from or ""
            )
        except Exception as err:
            log.error("smtp.rcpt.db_error", error=type(err).__name__)
            return replies.TEMP_FAILURE
        if limited is not None:
            return limited
        envelope.resolutions.append(res)
        return replies.RECIPIENT_OK

    async def handle_DATA(
        self, server: SMTP, session: RelaySession, envelope: RelayEnvelope
    ) -> str:
        peer = session.peer
        info = SessionInfo(
            session_id=getattr(session, "relay_id", ""),
            client_ip=peer[0] if isinstance(peer, tuple) else str(peer),
            helo=session.host_name or "",
            mail_from=envelope.mail_from or "",
        )
        raw: bytes = envelope.original_content or b""
        resolutions: list[Resolution] = getattr(envelope, "resolutions", [])
        tokens: list[str] = getattr(envelope, "bounce_tokens", [])
        ops: list[str] = getattr(envelope, "ops_mailboxes", [])
        # Shielded: once the message is in the commit queue, a client hanging up does not
        # cancel the commit. The message is then ours and will be delivered.
        try:
            if ops and self.ops is not None:
                return str(await asyncio.shield(self.ops.accept(info, ops, raw)))
            if tokens and self.bounces is not None:
                status = await asyncio.shield(self.bounces.accept(info, tokens, raw))
                if not resolutions:
                    return status
            reply = await asyncio.shield(self.pipeline.accept(info, resolutions, raw))
        except asyncio.CancelledError:
            raise
        except Exception as err:
            log.error("smtp.data.internal_error", error=type(err).__name__, exc_info=err)
            return str(replies.TEMP_FAILURE)
        return str(reply)
