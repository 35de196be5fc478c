"""Request and response shapes. Pydantic validates input (422 naming the field) and the
same classes give the OpenAPI document its schemas, so the two cannot drift apart."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    field_validator,
)

from relay.store import orders

ORDER_ID_PATTERN = r"^\d{3}-\d{7}-\d{7}$"
MAX_ID = 2**63 - 1  # the database's BIGINT: larger ids are refused (422), never a 500


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _email(value: str) -> str:
    try:
        return orders.normalize_email(value)
    except orders.OrderError as err:
        raise ValueError(str(err)) from None


EMAIL_SCHEMA = {"type": "string", "format": "email", "maxLength": 254}
Email = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(lambda v: _email(v)),
    WithJsonSchema(EMAIL_SCHEMA),
]
"""An address: typed ``format: email`` in the document, normalised on input."""
RecordId = Annotated[int, Field(ge=1, le=MAX_ID)]


def _iso_only(value: Any) -> Any:
    """A date-time is written as one (RFC 3339); pydantic would also take ``0.5`` as a
    Unix time, which the schema's ``format: date-time`` does not allow."""
    if isinstance(value, int | float) or (
        isinstance(value, str) and value.strip().lstrip("-").replace(".", "", 1).isdigit()
    ):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-01-31T12:00:00Z")
    return value


When = Annotated[datetime, BeforeValidator(_iso_only)]


def _utc(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class CreateOrder(_In):
    order_id: str = Field(pattern=ORDER_ID_PATTERN, description="NNN-NNNNNNN-NNNNNNN")
    buyer: Email = Field(description="the buyer's real address")
    seller: Email = Field(description="the seller's real address")
    buyer_locale: str = Field(default="en-US", pattern=orders.LOCALE.pattern, max_length=35)
    buyer_name: str = Field(default="", max_length=200)
    seller_name: str = Field(default="", max_length=200)
    delivered_at: When | None = None

    _when = field_validator("delivered_at")(_utc)


class AddSender(_In):
    sender: Email = Field(description="another From address allowed to write for the party")


class Exempt(_In):
    reason: str = Field(default="", max_length=500)


class SendTemplate(_In):
    vars: dict[str, str] = Field(default_factory=dict, description="placeholder values")
    locale: str | None = Field(default=None, description="override the buyer's locale")


class ArchiveQuery(_In):
    text: str | None = Field(default=None, max_length=500, description='words, "phrases", pre*')
    order_id: str | None = Field(default=None, pattern=ORDER_ID_PATTERN)
    seller: Email | None = Field(default=None, description="every record of this seller's orders")
    buyer: Email | None = Field(default=None, description="every record of this buyer's orders")
    party: Email | None = Field(default=None, description="a real address on the record")
    alias: Email | None = Field(default=None, description="the alias a record was addressed to")
    direction: Literal["buyer-to-seller", "seller-to-buyer", "notice"] | None = None
    verdict: (
        Literal["deliver", "redact", "reject", "refused", "tempfail", "absorbed"] | None
    ) = None
    finding_kind: str | None = Field(default=None, pattern=r"^[a-z_]{1,64}$")
    kind: Literal["message", "notice", "dsn"] | None = None
    since: When | None = None
    until: When | None = None
    limit: int = Field(default=50, ge=1, le=500)
    before_id: int | None = Field(default=None, ge=1, le=MAX_ID)

    _when = field_validator("since", "until")(_utc)


class OrderListQuery(_In):
    party: Email | None = Field(default=None, description="a buyer's or seller's real address")
    status: Literal["open", "closed"] | None = None
    limit: int = Field(default=100, ge=1, le=1000)


class ReportQuery(_In):
    seller: Email | None = None
    days: Literal["7", "30", "90"] = "30"


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    field: str | None


class Error(BaseModel):
    error: ErrorBody


class Order(BaseModel):
    order_id: str = Field(description="the order id, as given at creation")
    id: str = Field(description="the same as order_id (kept for older clients)")
    status: Literal["open", "closed"]
    buyer: str
    seller: str
    buyer_name: str
    seller_name: str
    buyer_locale: str
    buyer_alias: str = Field(description="reaches the buyer; the seller writes here")
    seller_alias: str = Field(description="reaches the seller; the buyer writes here")
    created_at: datetime
    closed_at: datetime | None
    delivered_at: datetime | None


class OrderList(BaseModel):
    orders: list[Order]


class Senders(BaseModel):
    party: str
    senders: list[str]


class ThreadMessage(BaseModel):
    id: int
    created_at: datetime
    direction: str
    verdict: str
    subject: str
    no_response_needed: bool


class Thread(BaseModel):
    order_id: str
    messages: list[ThreadMessage]


class Exemption(BaseModel):
    archive_id: int
    order_id: str
    reason: str
    created_at: datetime


class ArchiveItem(BaseModel):
    id: int
    created_at: datetime
    kind: str
    order_id: str | None
    direction: str
    alias: str
    mail_from: str
    rcpt: str
    subject: str
    verdict: str
    reason: str
    findings: list[dict[str, Any]]
    sha256: str
    relay_message_id: str
    deliveries: list[dict[str, Any]]


class ArchivePage(BaseModel):
    items: list[ArchiveItem]
    next_before_id: int | None = Field(description="pass as before_id for the next page")


class ArchiveRecord(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: int
    created_at: datetime
    verdict: str
    findings: list[dict[str, Any]]
    auth: dict[str, Any]
    events: list[dict[str, Any]]
    original_bytes: int
    delivered_bytes: int | None


class SellerTimes(BaseModel):
    seller: str
    buyer_messages: int
    answered: int
    answered_late: int
    open_overdue: int
    open_within_deadline: int
    exempted: int
    late_rate: float | None = Field(description="late or overdue / (answered + overdue)")
    average_response_seconds: float | None
    overdue: list[dict[str, Any]]


class ResponseTimes(BaseModel):
    generated_at: datetime
    days: int
    deadline_hours: int
    sellers: list[SellerTimes]


class TemplateInfo(BaseModel):
    name: str
    title: str
    locales: list[str]
    variables: list[str]


class Templates(BaseModel):
    templates: list[TemplateInfo]


class TemplateSent(BaseModel):
    order_id: str
    template: str
    locale: str
    reply: str
    archive_ids: list[int]
