"""Marketplace scope: orders, their aliases and threads, parties' senders, templates.

The marketplace supplied both real addresses, so it may read them back; the thread view it
gets carries no addresses or bodies at all.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from relay import templates
from relay.api import models as m
from relay.api.errors import answer, require, responses
from relay.store import orders, reports

M = ("marketplace",)
router = APIRouter(prefix="/v1")
OrderId = Annotated[
    str, Path(pattern=m.ORDER_ID_PATTERN, description="order id, NNN-NNNNNNN-NNNNNNN")
]
ArchiveId = Annotated[int, Path(ge=1, le=m.MAX_ID, description="archive record id")]
Party = Annotated[
    str,
    Path(description="the party's real address", max_length=254,
         json_schema_extra={"format": "email"}),
]  # fmt: skip
TemplateName = Annotated[str, Path(max_length=64, description="template name")]


def _domain(request: Request) -> str:
    return str(request.app.state.settings.relay.domain)


def order_out(view: orders.OrderView) -> dict[str, Any]:
    """One vocabulary in and out: ``order_id`` (``id`` kept for older clients)."""
    return {"order_id": view.id, **view.as_dict()}


@router.post("/orders", summary="Create an order and mint its two aliases",
             operation_id="createOrder", status_code=201, response_model=m.Order,
             responses=responses(409), dependencies=[require(*M)])  # fmt: skip
async def create_order(request: Request, body: m.CreateOrder) -> Any:
    try:
        view = await orders.create_order(
            request.app.state.engine,
            _domain(request),
            body.order_id,
            buyer=body.buyer,
            seller=body.seller,
            buyer_locale=body.buyer_locale,
            buyer_name=body.buyer_name,
            seller_name=body.seller_name,
            delivered_at=body.delivered_at,
        )
    except orders.OrderError as err:
        raise answer(err) from None
    return JSONResponse(order_out(view), status_code=201)


@router.get("/orders", summary="List orders, newest first", operation_id="listOrders",
            response_model=m.OrderList, responses=responses(),
            dependencies=[require(*M)])  # fmt: skip
async def list_orders(request: Request, query: Annotated[m.OrderListQuery, Query()]) -> Any:
    views = await orders.list_orders(
        request.app.state.engine, _domain(request), party=query.party, status=query.status,
        limit=query.limit,
    )  # fmt: skip
    return JSONResponse({"orders": [order_out(v) for v in views]})


@router.get("/orders/{order_id}", summary="Read an order", operation_id="getOrder",
            response_model=m.Order, responses=responses(404),
            dependencies=[require(*M)])  # fmt: skip
async def get_order(request: Request, order_id: OrderId) -> Any:
    try:
        view = await orders.get_order(request.app.state.engine, _domain(request), order_id)
    except orders.OrderError as err:
        raise answer(err) from None
    return JSONResponse(order_out(view))


def _status(status: str, name: str, summary: str) -> None:
    @router.post(f"/orders/{{order_id}}/{name}", summary=summary, operation_id=f"{name}Order",
                 response_model=m.Order, responses=responses(404), dependencies=[require(*M)],
                 name=f"{name}_order")  # fmt: skip
    async def change(request: Request, order_id: OrderId) -> Any:
        engine = request.app.state.engine
        try:
            view = await orders.set_status(engine, _domain(request), order_id, status)
        except orders.OrderError as err:
            raise answer(err) from None
        return JSONResponse(order_out(view))


_status("closed", "close", "Close an order: its aliases stop accepting mail")
_status("open", "reopen", "Reopen a closed order")


@router.get("/orders/{order_id}/messages", summary="An order's messages (no addresses, no bodies)",
            operation_id="getThread", response_model=m.Thread, responses=responses(404),
            dependencies=[require("marketplace", "ops")])  # fmt: skip
async def get_thread(request: Request, order_id: OrderId) -> Any:
    engine = request.app.state.engine
    try:
        await orders.get_order(engine, _domain(request), order_id)
    except orders.OrderError as err:
        raise answer(err) from None
    return JSONResponse({"order_id": order_id, "messages": await reports.thread(engine, order_id)})


@router.post("/orders/{order_id}/messages/{archive_id}/no-response-needed",
             summary="Mark a buyer message as needing no response", operation_id="exemptMessage",
             status_code=201, response_model=m.Exemption, responses=responses(404),
             dependencies=[require("marketplace", "ops")])  # fmt: skip
async def exempt_message(
    request: Request, order_id: OrderId, archive_id: ArchiveId, body: m.Exempt
) -> Any:
    by = "marketplace" if "marketplace" in request.state.scopes else "ops"
    try:
        out = await reports.exempt(
            request.app.state.engine, order_id, archive_id, reason=body.reason, by=by
        )
    except reports.ReportError as err:
        raise answer(err) from None
    return JSONResponse(out, status_code=201)


def _party(party: str) -> str:
    try:
        return orders.normalize_email(party)
    except orders.OrderError as err:
        raise answer(err, "party") from None


@router.get("/parties/{party}/senders", summary="A party's authorised senders",
            operation_id="listSenders", response_model=m.Senders, responses=responses(),
            dependencies=[require(*M)])  # fmt: skip
async def list_senders(request: Request, party: Party) -> Any:
    party = _party(party)
    senders = await orders.list_senders(request.app.state.engine, party)
    return JSONResponse({"party": party, "senders": senders})


@router.post("/parties/{party}/senders", summary="Authorise another sender address",
             operation_id="addSender", status_code=201, response_model=m.Senders,
             responses=responses(404), dependencies=[require(*M)])  # fmt: skip
async def add_sender(request: Request, party: Party, body: m.AddSender) -> Any:
    party, engine = _party(party), request.app.state.engine
    try:
        await orders.add_sender(engine, party, body.sender)
    except orders.OrderError as err:
        raise answer(err, "sender") from None
    senders = await orders.list_senders(engine, party)
    return JSONResponse({"party": party, "senders": senders}, status_code=201)


@router.delete("/parties/{party}/senders/{sender}", summary="Withdraw a sender",
               operation_id="removeSender", response_model=m.Senders, responses=responses(404),
               dependencies=[require(*M)])  # fmt: skip
async def remove_sender(
    request: Request,
    party: Party,
    sender: Annotated[str, Path(description="the authorised address", max_length=254,
                                json_schema_extra={"format": "email"})],
) -> Any:  # fmt: skip
    party, engine = _party(party), request.app.state.engine
    try:
        sender = orders.normalize_email(sender)
        await orders.remove_sender(engine, party, sender)
    except orders.OrderError as err:
        raise answer(err, "sender") from None
    return JSONResponse({"party": party, "senders": await orders.list_senders(engine, party)})


@router.get("/templates", summary="Approved templates, their locales and variables",
            operation_id="listTemplates", response_model=m.Templates, responses=responses(),
            dependencies=[require(*M)])  # fmt: skip
async def list_templates(request: Request) -> Any:
    found = templates.load_all()
    return JSONResponse({
        "templates": [
            {"name": t.name, "title": t.title, "locales": sorted(t.texts),
             "variables": list(t.variables)}
            for t in found.values()
        ]
    })  # fmt: skip


@router.post("/orders/{order_id}/templates/{template}",
             summary="Send an approved template to the buyer, in the buyer's locale",
             operation_id="sendTemplate", status_code=202, response_model=m.TemplateSent,
             responses=responses(404, 409), dependencies=[require(*M)])  # fmt: skip
async def send_template(
    request: Request, order_id: OrderId, template: TemplateName, body: m.SendTemplate
) -> Any:
    sender: templates.TemplateSender = request.app.state.template_sender
    try:
        sent = await sender.send(order_id, template, body.vars, body.locale)
    except templates.TemplateError as err:
        raise answer(err) from None
    return JSONResponse(sent.as_dict(), status_code=202)
