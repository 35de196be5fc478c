"""Every exception the relay defines, in one tree; the faces map it by type, never by text.

An error's words are for people; its type is for the code. The API's HTTP status, the
CLI's exit status and the SMTP reply are chosen from the class (``isinstance``), so a
reworded message can never turn a 404 into a 422. Every class below derives from
``RelayError`` and from exactly one *category*; a few *families* group the errors of one
module so that ``except OrderError`` still catches them all, but a family is never raised
itself: its modules raise one of its leaves.

The categories, and how each face answers them
----------------------------------------------

========================  ===========================  =========  =============================
category                  meaning                      HTTP       CLI exit / SMTP
========================  ===========================  =========  =============================
``NotFound``              the caller named something   404        1 (``Error: <text>``)
                          the relay does not know
``Conflict``              the request clashes with     409        1
                          the state (already decided,
                          already exists, closed)
``Invalid``               the caller's input, message  422        1; at intake the stage that
                          or remote data is malformed             raised it picks a 5xx reply
``Refusal``               a message refused with the   422        1; SMTP: ``err.reply``
                          named SMTP reply it carries             (relay.core.replies)
``TemporaryError``        not the caller's fault, may  503        75 (EX_TEMPFAIL); SMTP 451
                          pass on a retry                         (``TEMP_FAILURE`` /
                                                                  ``DNS_TEMP_FAILURE``)
``ConfigError``           the operator must fix a      500        2; ``relay serve`` does not
                          setting or a file first                 start
``DeliveryError``         the next hop of a delivery   (never)    the worker retries or
                          failed; ``permanent`` says              bounces by ``permanent``
========================  ===========================  =========  =============================

``NotFound``, ``Conflict``, ``Invalid`` and ``Refusal`` are ``CallerError`` (bad input
from whoever called: an API client, an operator at the CLI, a sending MTA). The API's
own answers (401, 403, 413, FastAPI's validation 422) are ``relay.api.errors.ApiError``,
a ``RelayError`` of no category that carries its status; anything uncategorised that
reaches a face is our bug: HTTP 500, a CLI traceback, SMTP 451/554.

Every exception, who raises it, and its category
------------------------------------------------

Bad input from a caller (``CallerError``):

- ``OrderError`` family (``relay.store.orders``; the API and ``relay order``/``party``):
  ``OrderInvalid`` (Invalid: a malformed address, order id, locale, a party on the relay
  domain), ``OrderNotFound`` (NotFound: no such order or party, a sender not
  authorised), ``OrderConflict`` (Conflict: the order exists, buyer = seller; carries
  ``field``).
- ``HoldError`` family (``relay.store.holds``; API ``/v1/holds``, ``relay hold``):
  ``HoldNotFound`` (no such hold, or nothing kept to deliver), ``HoldDecided``
  (Conflict: decided once already).
- ``ReportError`` family (``relay.store.reports``, ``relay.web``): ``ReportInvalid``
  (a window or message that cannot be asked for; ``field``), ``ReportNotFound``.
- ``TemplateError`` family (``relay.templates``; API ``/v1/.../templates``, ``relay
  template``): ``TemplateInvalid`` (a missing or unexpected variable; ``field``),
  ``TemplateNotFound`` (unknown template or order), ``TemplateConflict`` (the order is
  closed), ``TemplateRefused`` (the relay's own intake refused the message), and
  ``TemplateBroken`` (ConfigError: a shipped template file that does not check).
- ``ChoiceError`` (NotFound; ``relay.store.choices``): an order or party unknown to an
  opt-out or "no reply needed".
- ``PartyNotFound`` (NotFound; ``relay.ratelimits.party_view``): a party unknown to the
  rate-limit view (API ``/v1/parties/{party}/limits``, ``relay limits show``).
- ``QueryError`` (Invalid; ``relay.store.search``): a search text with nothing
  searchable; the API answers an empty page, the CLI names ``--text``.
- ``FromError`` (Invalid; ``relay.mail.address``, ``relay.authn.fromaddr``): a From
  header that is not exactly one plain mailbox; ``str()`` is a safe reason.
- ``SpfPermError`` (Invalid; ``relay.authn.spf``, there ``PermError``): a broken SPF
  record; the SPF result becomes ``permerror``, never a reply of its own.
- ``ContentRefused`` (Invalid; ``relay.policy.mime``, there ``Refused``): a message the
  policy cannot judge safely; the engine turns it into a reject verdict.
- ``MessageLimitExceeded`` (Refusal; ``relay.mail.limits``, there ``LimitExceeded``): a
  structural limit; 554/552 from ``reply``.
- ``BudgetExceeded`` (Refusal; ``relay.policy_pool``): the CPU or memory budget of
  checking a message; 554/552 from ``reply``.
- ``RateLimitExceeded`` (Refusal; ``relay.ratelimits``, there ``LimitExceeded``): a
  submission the group commit dropped for a rate limit; 450 from ``reply``.

Not the caller's fault (``TemporaryError``):

- ``DnsTempError`` (``relay.authn.dnsutil``): a lookup that may succeed later; the
  sender checks answer 451 4.4.3 (``DNS_TEMP_FAILURE``).
- ``StatementTimeout`` (``relay.db.engine.time_limit``): the database cancelled a
  statement past its limit (an archive search); the API answers 503 ``search_timeout``
  with the setting to raise, the CLI names it.

Configuration and start-up (``ConfigError``):

- ``SettingsError`` (``relay.settings``): a bad setting, worded for the operator.
- ``StartupError`` (``relay.cli``): a setting, port or database the operator must fix
  before a command can run; one line, exit 2.
- ``PolicyError`` (``relay.policy.config``): a bad policy file, naming the key.
- ``DkimKeyError`` (``relay.dkim``): a missing, unreadable or mismatched DKIM key.
- ``TemplateBroken`` (above).

Delivery (``DeliveryError``):

- ``RouteError`` (``relay.delivery.route``): no route to the recipient's domain;
  ``permanent`` and ``enhanced`` become the delivery's bounce or retry.

Two exceptions stay outside on purpose: ``relay.policy_pool._CpuOver`` is a
``BaseException`` so that no ``except Exception`` in a parser can swallow the CPU alarm
inside a policy worker; it never leaves that process (it becomes ``BudgetExceeded``).
``relay.cli.quick_sql.Fallback`` hands a CLI search to the store's path (which words
any error); it never leaves the CLI's quick search.

Errors that keep a builtin base (``ValueError``, ``LookupError``) keep it for callers
that catch the builtin. This module imports nothing outside ``relay.core`` and does no
I/O: it is vocabulary.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from relay.core.replies import Reply


class RelayError(Exception):
    """The base of every error the relay defines; ``field`` names the input at fault."""

    field: str | None = None


# -- categories ------------------------------------------------------------------------
class CallerError(RelayError):
    """Bad input from whoever called: an API client, an operator, a sending MTA."""


class NotFound(CallerError):
    """The caller named something the relay does not know (HTTP 404, exit 1)."""


class Conflict(CallerError):
    """The request clashes with the current state (HTTP 409, exit 1)."""


class Invalid(CallerError):
    """Malformed input, message or remote data (HTTP 422, exit 1)."""


class Refusal(CallerError):
    """A message refused; ``reply`` is the SMTP answer (relay.core.replies)."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply

    def __reduce__(self) -> tuple[Any, ...]:  # raised in a policy worker, read in ours
        return (type(self), (self.reply,))


class TemporaryError(RelayError):
    """Not the caller's fault and may pass on a retry (HTTP 503, SMTP 451, exit 75)."""


class ConfigError(RelayError):
    """A setting or file the operator must fix first (exit 2; HTTP 500)."""


class DeliveryError(RelayError):
    """The next hop of a delivery failed; the worker retries or bounces by ``permanent``."""


CATEGORIES: tuple[type[RelayError], ...] = (
    NotFound, Conflict, Invalid, Refusal, TemporaryError, ConfigError, DeliveryError,
)  # fmt: skip


# -- orders and parties (relay.store.orders) ---------------------------------------------
class OrderError(RelayError, ValueError):
    """Family: a provisioning request that cannot be honoured; the message says why."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class OrderInvalid(OrderError, Invalid):
    """A malformed address, order id or locale, or a party on the relay domain."""


class OrderNotFound(OrderError, NotFound):
    """No such order or party, or an address that is not one of the party's senders."""


class OrderConflict(OrderError, Conflict):
    """The order exists already, or its buyer and seller are one address."""


# -- held messages (relay.store.holds) ---------------------------------------------------
class HoldError(RelayError, LookupError):
    """Family: a hold that cannot be decided; the message says which."""


class HoldNotFound(HoldError, NotFound):
    """No such hold, or no copy kept to deliver."""


class HoldDecided(HoldError, Conflict):
    """The hold was decided already: each is decided once."""


# -- reports (relay.store.reports) -------------------------------------------------------
class ReportError(RelayError, ValueError):
    """Family: a request the report cannot honour; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ReportInvalid(ReportError, Invalid):
    """A window or message that cannot be asked for."""


class ReportNotFound(ReportError, NotFound):
    """The order has no such message."""


# -- approved templates (relay.templates) ------------------------------------------------
class TemplateError(RelayError, ValueError):
    """Family: an unknown template, a missing or unexpected variable, or a template that
    cannot be sent; ``field`` names the input at fault."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class TemplateInvalid(TemplateError, Invalid):
    """A missing, unexpected or unprintable variable."""


class TemplateNotFound(TemplateError, NotFound):
    """An unknown template, or an order the relay does not know."""


class TemplateConflict(TemplateError, Conflict):
    """The order is closed."""


class TemplateRefused(TemplateError, Invalid):
    """The relay's own intake refused the rendered message (the text quotes the reply)."""


class TemplateBroken(TemplateError, ConfigError):
    """A template file whose locales do not use exactly the declared variables."""


# -- the rest of bad input ---------------------------------------------------------------
class ChoiceError(NotFound, LookupError):
    """An order or party the relay does not know (relay.store.choices)."""


class PartyNotFound(NotFound, LookupError):
    """A party address with no counters to show (relay.ratelimits.party_view)."""


class QueryError(Invalid, ValueError):
    """A search text with nothing searchable in it (relay.store.search)."""


class FromError(Invalid, ValueError):
    """The From header is not exactly one plain mailbox; ``str()`` is a safe reason."""


class SpfPermError(Invalid):
    """The SPF record is broken or over a limit: the SPF result is permerror."""


class ContentRefused(Invalid):
    """The message cannot be judged safely; the text is the plain reason."""


class MessageLimitExceeded(Refusal):
    """A message is over one of the structural limits; ``reply`` names it."""


class BudgetExceeded(Refusal):
    """A message went over its CPU or memory budget; ``reply`` is the permanent refusal."""


class RateLimitExceeded(Refusal):
    """A submission the group commit dropped for a limit; ``reply`` is the session's answer."""

    def __init__(self, limit: str, reply: Reply) -> None:
        super().__init__(reply)
        self.args = (limit,)
        self.limit = limit

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.limit, self.reply))


# -- temporary ---------------------------------------------------------------------------
class DnsTempError(TemporaryError):
    """A lookup that may succeed later: timeout, SERVFAIL, no reachable server."""


class StatementTimeout(TemporaryError):
    """The database cancelled a statement that ran past its time limit (``time_limit``)."""

    def __init__(self, seconds: float) -> None:
        super().__init__(f"cancelled after {seconds:g} s")
        self.seconds = seconds

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.seconds,))


# -- configuration and start-up ----------------------------------------------------------
class SettingsError(ConfigError):
    """A configuration problem, worded for the operator (names the key)."""


class StartupError(ConfigError):
    """A problem the operator must fix before the command can run (a setting, a port in
    use, a database that is missing or down): one line naming it, exit status 2."""


class PolicyError(ConfigError, ValueError):
    """A bad policy file; the message names the offending key."""


class DkimKeyError(ConfigError, ValueError):
    """The key file is missing, unreadable, or does not match the algorithm."""


# -- delivery ----------------------------------------------------------------------------
class RouteError(DeliveryError):
    """No route to the recipient's domain; ``permanent`` and ``enhanced`` say how the
    delivery settles (bounce or retry)."""

    def __init__(self, message: str, *, permanent: bool, enhanced: str) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.enhanced = enhanced


def category(err: BaseException) -> type[RelayError] | None:
    """The one category ``err`` belongs to (None: not ours, or a family/face-only class)."""
    for cls in CATEGORIES:
        if isinstance(err, cls):
            return cls
    return None
