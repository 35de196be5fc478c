"""The buyer's choices and the abuse limits over HTTP (issue 13; relay.store.choices,
relay.ratelimits): opt-out and opt-in of an order or a whole buyer, "this thread needs no
reply", and a party's rate counters for ops.

The marketplace calls these when the buyer clicks "stop messages from this seller"
(``POST /v1/orders/{id}/opt-out``) or opts out account-wide
(``POST /v1/parties/{party}/opt-out``); ``DELETE`` opts back in.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from relay.api import models as m
from relay.api.errors import answer, require, responses
from relay.store import choices

router = APIRouter(prefix="/v1")
OrderId = Annotated[
    str, Path(pattern=m.ORDER_ID_PATTERN, description="order id, NNN-NNNNNNN-NNNNNNN")
]
Party = Annotated[
    str,
    Path(description="the party's real address", max_length=254,
         json_schema_extra={"format": "email"}),
]  # fmt: skip
BOTH = ("marketplace", "ops")


class OptOut(BaseModel):
    opted_out: bool
    order_id: str | None = None
    party: str | None = None
    since: str | None = Field(default=None, description="when the opt-out was recorded")
    by: str | None = Field(default=None, description="who recorded it")
    removed: bool | None = Field(default=None, description="opt-in: there was one to remove")


class OptOutStatus(BaseModel):
    order_id: str
    order_opt_out: dict[str, Any] | None
    buyer_opt_out: dict[str, Any] | None


class NoReplyNeeded(BaseModel):
    reason: str = Field(default="", max_length=500)


class NoReplyNeededOut(BaseModel):
    order_id: str
    exempted: list[int] = Field(description="buyer messages now exempt from the 24-hour rule")


class PartyLimits(BaseModel):
    model_config = {"extra": "allow"}
    party: str
    limits: dict[str, dict[str, int]]
    hits_today: dict[str, int]


def _by(request: Request) -> str:
    return "marketplace" if "marketplace" in request.state.scopes else "ops"


async def _call(fn: Any) -> JSONResponse:
    try:
        return JSONResponse(await fn)
    except choices.ChoiceError as err:
        raise answer(err) from None


@router.get("/orders/{order_id}/opt-out", summary="The order's and its buyer's opt-outs",
            operation_id="getOptOut", response_model=OptOutStatus, responses=responses(404),
            dependencies=[require(*BOTH)])  # fmt: skip
async def get_opt_out(request: Request, order_id: OrderId) -> Any:
    return await _call(choices.order_status(request.app.state.engine, order_id))


@router.post("/orders/{order_id}/opt-out",
             summary="The buyer stops proactive messages from this order's seller",
             operation_id="optOutOrder", response_model=OptOut, responses=responses(404),
             dependencies=[require(*BOTH)])  # fmt: skip
async def opt_out_order(request: Request, order_id: OrderId) -> Any:
    engine = request.app.state.engine
    return await _call(choices.order_opt_out(engine, order_id, by=_by(request)))


@router.delete("/orders/{order_id}/opt-out", summary="Undo the order's opt-out",
               operation_id="optInOrder", response_model=OptOut, responses=responses(404),
               dependencies=[require(*BOTH)])  # fmt: skip
async def opt_in_order(request: Request, order_id: OrderId) -> Any:
    return await _call(choices.order_opt_in(request.app.state.engine, order_id))


@router.post("/parties/{party}/opt-out",
             summary="A buyer stops proactive messages from every seller",
             operation_id="optOutParty", response_model=OptOut, responses=responses(404),
             dependencies=[require(*BOTH)])  # fmt: skip
async def opt_out_party(request: Request, party: Party) -> Any:
    engine = request.app.state.engine
    return await _call(choices.party_opt_out(engine, party, by=_by(request)))


@router.delete("/parties/{party}/opt-out", summary="Undo a buyer's account-wide opt-out",
               operation_id="optInParty", response_model=OptOut, responses=responses(404),
               dependencies=[require(*BOTH)])  # fmt: skip
async def opt_in_party(request: Request, party: Party) -> Any:
    return await _call(choices.party_opt_in(request.app.state.engine, party))


@router.post("/orders/{order_id}/no-response-needed",
             summary="The thread needs no reply: its open buyer messages leave the 24-hour "
             "report", operation_id="noReplyNeeded", response_model=NoReplyNeededOut,
             responses=responses(404), dependencies=[require(*BOTH)])  # fmt: skip
async def no_reply_needed(request: Request, order_id: OrderId, body: NoReplyNeeded) -> Any:
    engine = request.app.state.engine
    return await _call(
        choices.no_reply_needed(engine, order_id, reason=body.reason, by=_by(request))
    )


@router.get("/parties/{party}/limits",
            summary="A party's rate counters against its limits, and today's refusals",
            operation_id="partyLimits", response_model=PartyLimits, responses=responses(404),
            dependencies=[require("ops")])  # fmt: skip
async def party_limits(request: Request, party: Party) -> Any:
    from relay.core.errors import PartyNotFound
    from relay.ratelimits import party_view

    state = request.app.state
    try:
        return JSONResponse(await party_view(state.engine, state.settings, party))
    except PartyNotFound as err:
        raise answer(err) from None
