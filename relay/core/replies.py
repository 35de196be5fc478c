"""Every SMTP reply the relay gives, as named constants with RFC 3463 enhanced codes.

Replies never carry internal detail or any real address: an error text is read by the
other party's mail client and sometimes shown verbatim in a bounce.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Reply:
    code: int
    enhanced: str
    text: str

    def __str__(self) -> str:
        if not self.enhanced:  # 220 and 354 go before a transaction's outcome: none
            return f"{self.code} {self.text}"
        return f"{self.code} {self.enhanced} {self.text}"

    def with_text(self, text: str) -> Reply:
        return Reply(self.code, self.enhanced, text)

    @property
    def permanent(self) -> bool:
        return self.code >= 500


OK = Reply(250, "2.0.0", "OK")
SENDER_OK = Reply(250, "2.1.0", "Sender OK")
RECIPIENT_OK = Reply(250, "2.1.5", "Recipient OK")
QUEUED = Reply(250, "2.0.0", "Queued")  # text replaced with "queued as <id>"

TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down, try again later")
TEMP_FAILURE = Reply(451, "4.3.0", "Temporary failure, please try again later")
DNS_TEMP_FAILURE = Reply(451, "4.4.3", "Temporary DNS failure checking the sender, try later")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")

SYNTAX_ADDRESS = Reply(501, "5.1.3", "Bad address syntax")
NO_SUCH_ALIAS = Reply(550, "5.1.1", "No such recipient")
RELAY_DENIED = Reply(
    550, "5.7.1", "Relaying denied: this server only accepts mail for its own domain"
)
STRANGER = Reply(
    550,
    "5.7.1",
    "Sender is not a participant of this order: write from the address the marketplace has on file",
)
POLICY_REJECT = Reply(550, "5.7.1", "Message refused by the messaging policy")
TOO_BIG = Reply(552, "5.3.4", "Message too big")
BAD_LINE_ENDINGS = Reply(
    554, "5.6.0", "Message refused: bare CR or LF, or NUL, in the message data (RFC 5322 2.3)"
)
LINE_TOO_LONG = Reply(554, "5.6.0", "Message refused: a line is longer than 998 characters")
MULTIPLE_FROM = Reply(554, "5.6.0", "Message refused: more than one From header")
BAD_HEADER = Reply(554, "5.6.0", "Message refused: malformed header section")
# A content stage failed on this message: refused with a reason, never a 4xx the sender
# would retry for days (our own resource trouble, a database or disk, stays 451).
UNPROCESSABLE = Reply(
    554, "5.6.0", "Message refused: it could not be processed (internal processing error)"
)
LOOP = Reply(554, "5.4.6", "Message refused: too many hops, possible mail loop")
BAD_BOUNCE = Reply(550, "5.1.1", "No such recipient")

# The SMTP edge (relay.smtp.gate): slow or greedy clients, RFC 6531 envelopes, RFC basics.
TOO_MANY_FROM_CLIENT = Reply(
    421, "4.7.0", "Too many connections from your address, try again later"
)
EVICTED = Reply(421, "4.7.0", "Too many connections: closing this idle session, try again later")
TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded waiting for your command, closing")
TOO_SLOW = Reply(421, "4.4.2", "Message data arriving too slowly, closing; try again later")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors or junk commands, closing")
TLS_ACTIVE = Reply(503, "5.5.1", "TLS already active")
AUTH_UNSUPPORTED = Reply(
    502, "5.5.1", "AUTH not supported: this server only accepts mail for its own domain"
)
BAD_COMMAND_BYTES = Reply(
    501, "5.5.2", "Syntax error: control characters or bytes that are not UTF-8 in the command"
)
NEEDS_SMTPUTF8 = Reply(553, "5.6.7", "Non-ASCII address needs the SMTPUTF8 parameter on MAIL FROM")
OPS_SEPARATELY = Reply(
    452, "4.5.3", "Postmaster and abuse mail go in a transaction of their own: retry this one"
)

# Answers of the commands relay.smtp.server adds or overrides, word for word as before.
COMMAND_OK = Reply(250, "2.0.0", "Ok")
START_DATA = Reply(354, "", "End data with <CR><LF>.<CR><LF>")
START_TLS = Reply(220, "", "Ready to start TLS")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
XFORWARD_IN_TRANSACTION = Reply(503, "5.5.1", "XFORWARD not allowed inside a transaction")
XFORWARD_SYNTAX = Reply(501, "5.5.4", "Syntax: XFORWARD attribute=value...")
STARTTLS_UNAVAILABLE = Reply(502, "5.5.1", "STARTTLS not available")
STARTTLS_SYNTAX = Reply(501, "5.5.4", "Syntax: STARTTLS")
NEED_RCPT = Reply(503, "5.5.1", "Error: need RCPT command")
DATA_SYNTAX = Reply(501, "5.5.4", "Syntax: DATA")
TOO_FAST = Reply(  # relay.smtp.anvil: the connection rate per client address
    421, "4.7.0", "Too many connections from your address in a short time, try again later"
)

# A message over a structural limit or over its CPU/memory budget is the message's fault,
# and a retry would meet the same limit: permanent, never 451 (relay.mail.limits).
STRUCTURE_LIMIT = Reply(554, "5.6.0", "Message refused: its structure is over a limit")
SIZE_LIMIT = Reply(552, "5.3.4", "Message refused: a part of it is over a size limit")
CPU_BUDGET = Reply(554, "5.6.0", "Message refused: checking it needs more CPU time than allowed")
MEMORY_BUDGET = Reply(552, "5.3.4", "Message refused: checking it needs more memory than allowed")


_FIELD_NAMES = {"message-id": "Message-ID", "reply-to": "Reply-To", "in-reply-to": "In-Reply-To"}


def _field(name: str) -> str:
    return _FIELD_NAMES.get(name, "-".join(p.capitalize() for p in name.split("-")))


def duplicate_field(name: str) -> Reply:
    """RFC 5322 §3.6: a once-only field given twice (DKIM would vouch for one copy while
    the reader sees the other)."""
    return Reply(
        554, "5.6.0", f"Message refused: more than one {_field(name)} header field (RFC 5322 3.6)"
    )


def obsolete_field(name: str) -> Reply:
    return Reply(
        554, "5.6.0",
        f"Message refused: white space before the colon of the {_field(name)} header field",
    )  # fmt: skip
