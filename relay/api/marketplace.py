"""Marketplace scope: orders, their aliases and threads, parties' senders, templates.

The marketplace supplied both real addresses, so it may read them back; the thread view it
gets carries no addresses or bodies at all.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import orders, reports, templates
from relay.api import models as m
from relay.api.framework import ApiError, Spec, endpoint, invalid, not_found

M = ("marketplace",)
ORDER_PARAM = {"order_id": "order id, NNN-NNNNNNN-NNNNNNN"}


def _domain(request: Request) -> str:
    return str(request.app.state.settings.relay.domain)


def _order_error(err: orders.OrderError, field: str | None = None) -> ApiError:
    text = str(err)
    if text.startswith("no such order"):
        return not_found(text)
    if "already exists" in text:
        return ApiError(409, "conflict", text, "order_id")
    if text.startswith("no such party") or "is not an authorised sender" in text:
        return not_found(text)
    return invalid(field, text)


@endpoint(Spec("POST", "/v1/orders", M, "Create an order and mint its two aliases",
               "createOrder", body=m.CreateOrder, response=m.Order, status=201,
               errors=(409, 422)))  # fmt: skip
async def create_order(request: Request, body: m.CreateOrder) -> Response:
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
        raise _order_error(err) from None
    return JSONResponse(view.as_dict(), status_code=201)


@endpoint(Spec("GET", "/v1/orders", M, "List orders, newest first", "listOrders",
               query=m.OrderListQuery, response=m.OrderList))  # fmt: skip
async def list_orders(request: Request, query: m.OrderListQuery) -> Response:
    views = await orders.list_orders(
        request.app.state.engine, _domain(request), party=query.party, status=query.status,
        limit=query.limit,
    )  # fmt: skip
    return JSONResponse({"orders": [v.as_dict() for v in views]})


@endpoint(Spec("GET", "/v1/orders/{order_id}", M, "Read an order", "getOrder",
               response=m.Order, path_params=ORDER_PARAM, errors=(404,)))  # fmt: skip
async def get_order(request: Request, order_id: str) -> Response:
    try:
        view = await orders.get_order(request.app.state.engine, _domain(request), order_id)
    except orders.OrderError as err:
        raise _order_error(err) from None
    return JSONResponse(view.as_dict())


def _status(status: str, name: str, summary: str) -> Any:
    path = f"/v1/orders/{{order_id}}/{name}"

    @endpoint(Spec("POST", path, M, summary, f"{name}Order", response=m.Order,
                   path_params=ORDER_PARAM, errors=(404,)))  # fmt: skip
    async def change(request: Request, order_id: str) -> Response:
        engine = request.app.state.engine
        try:
            view = await orders.set_status(engine, _domain(request), order_id, status)
        except orders.OrderError as err:
            raise _order_error(err) from None
        return JSONResponse(view.as_dict())

    change.__name__ = f"{name}_order"
    return change


close_order = _status("closed", "close", "Close an order: its aliases stop accepting mail")
reopen_order = _status("open", "reopen", "Reopen a closed order")


@endpoint(Spec("GET", "/v1/orders/{order_id}/messages", ("marketplace", "ops"),
               "An order's messages (no addresses, no bodies)", "getThread",
               response=m.Thread, path_params=ORDER_PARAM, errors=(404,)))  # fmt: skip
async def get_thread(request: Request, order_id: str) -> Response:
    engine = request.app.state.engine
    try:
        await orders.get_order(engine, _domain(request), order_id)
    except orders.OrderError as err:
        raise _order_error(err) from None
    return JSONResponse({"order_id": order_id, "messages": await reports.thread(engine, order_id)})


@endpoint(Spec("POST", "/v1/orders/{order_id}/messages/{archive_id}/no-response-needed",
               ("marketplace", "ops"), "Mark a buyer message as needing no response",
               "exemptMessage", body=m.Exempt, response=m.Exemption, status=201,
               path_params={**ORDER_PARAM, "archive_id": "archive record id (integer)"},
               errors=(404, 422)))  # fmt: skip
async def exempt_message(
    request: Request, order_id: str, archive_id: int, body: m.Exempt
) -> Response:
    scopes = request.state.scopes
    by = "marketplace" if "marketplace" in scopes else "ops"
    try:
        out = await reports.exempt(
            request.app.state.engine, order_id, archive_id, reason=body.reason, by=by
        )
    except reports.ReportError as err:
        if err.missing:
            raise not_found(str(err)) from None
        raise invalid(err.field, str(err)) from None
    return JSONResponse(out, status_code=201)


PARTY_PARAM = {"party": "the party's real address"}


def _party(party: str) -> str:
    try:
        return orders.normalize_email(party)
    except orders.OrderError as err:
        raise invalid("party", str(err)) from None


@endpoint(Spec("GET", "/v1/parties/{party}/senders", M, "A party's authorised senders",
               "listSenders", response=m.Senders, path_params=PARTY_PARAM))  # fmt: skip
async def list_senders(request: Request, party: str) -> Response:
    party = _party(party)
    senders = await orders.list_senders(request.app.state.engine, party)
    return JSONResponse({"party": party, "senders": senders})


@endpoint(Spec("POST", "/v1/parties/{party}/senders", M, "Authorise another sender address",
               "addSender", body=m.AddSender, response=m.Senders, status=201,
               path_params=PARTY_PARAM, errors=(404, 422)))  # fmt: skip
async def add_sender(request: Request, party: str, body: m.AddSender) -> Response:
    party, engine = _party(party), request.app.state.engine
    try:
        await orders.add_sender(engine, party, body.sender)
    except orders.OrderError as err:
        raise _order_error(err, "sender") from None
    senders = await orders.list_senders(engine, party)
    return JSONResponse({"party": party, "senders": senders}, status_code=201)


@endpoint(Spec("DELETE", "/v1/parties/{party}/senders/{sender}", M, "Withdraw a sender",
               "removeSender", response=m.Senders,
               path_params={**PARTY_PARAM, "sender": "the authorised address"},
               errors=(404,)))  # fmt: skip
async def remove_sender(request: Request, party: str, sender: str) -> Response:
    party, engine = _party(party), request.app.state.engine
    try:
        sender = orders.normalize_email(sender)
        await orders.remove_sender(engine, party, sender)
    except orders.OrderError as err:
        raise _order_error(err, "sender") from None
    return JSONResponse({"party": party, "senders": await orders.list_senders(engine, party)})


@endpoint(Spec("GET", "/v1/templates", M, "Approved templates, their locales and variables",
               "listTemplates", response=m.Templates))  # fmt: skip
async def list_templates(request: Request) -> Response:
    found = templates.load_all()
    return JSONResponse({
        "templates": [
            {"name": t.name, "title": t.title, "locales": sorted(t.texts),
             "variables": list(t.variables)}
            for t in found.values()
        ]
    })  # fmt: skip


@endpoint(Spec("POST", "/v1/orders/{order_id}/templates/{template}", M,
               "Send an approved template to the buyer, in the buyer's locale", "sendTemplate",
               body=m.SendTemplate, response=m.TemplateSent, status=202,
               path_params={**ORDER_PARAM, "template": "template name"},
               errors=(404, 409, 422)))  # fmt: skip
async def send_template(
    request: Request, order_id: str, template: str, body: m.SendTemplate
) -> Response:
    sender: templates.TemplateSender = request.app.state.template_sender
    try:
        sent = await sender.send(order_id, template, body.vars, body.locale)
    except templates.TemplateError as err:
        code = {404: "not_found", 409: "conflict"}.get(err.status, "invalid")
        raise ApiError(err.status, code, str(err), err.field) from None
    return JSONResponse(sent.as_dict(), status_code=202)


HANDLERS = [create_order, list_orders, get_order, close_order, reopen_order, get_thread,
            exempt_message, list_senders, add_sender, remove_sender, list_templates,
            send_template]  # fmt: skip
