"""Held messages over HTTP for ops (relay.store.holds): list, look at one, release, refuse.

The same decisions as ``relay hold``: each hold is decided once (409 for a second try),
recorded append-only with the token's scope as who decided and the time.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from relay.api.errors import answer, require, responses
from relay.store import holds

router = APIRouter(prefix="/v1")
HoldId = Annotated[int, Path(ge=1, le=2**62, description="the held message's archive id")]


class HoldOut(BaseModel):
    id: int
    created_at: str
    order_id: str
    direction: str
    alias: str
    subject: str
    reason: str
    rules: list[str] = Field(description="the rules that could not decide")
    decision: str = Field(description='"" while waiting, else release or refuse')
    decided_by: str
    decided_at: str | None


class Released(BaseModel):
    id: int
    delivery_id: int


class RefuseIn(BaseModel):
    reason: str = Field(min_length=1, max_length=2000,
                        description="why; addresses, numbers and links never reach the sender")


class Refused(BaseModel):
    id: int
    notified: bool = Field(description="a notice was queued to the sender")


def _who(request: Request) -> str:
    return "api:" + ",".join(sorted(getattr(request.state, "scopes", set()) or {"ops"}))


@router.get("/holds", summary="Held messages, oldest first", operation_id="listHolds",
            response_model=list[HoldOut], responses=responses(),
            dependencies=[require("ops")])  # fmt: skip
async def list_holds(request: Request, all: bool = Query(False, description="decided too")
                     ) -> Any:
    rows = await holds.list_holds(request.app.state.engine, pending=not all)
    return JSONResponse([h.as_dict() for h in rows])


@router.get("/holds/{hold_id}", summary="One held message", operation_id="getHold",
            response_model=HoldOut, responses=responses(404),
            dependencies=[require("ops")])  # fmt: skip
async def get_hold(request: Request, hold_id: HoldId) -> Any:
    try:
        return JSONResponse((await holds.get_hold(request.app.state.engine, hold_id)).as_dict())
    except holds.HoldError as err:
        raise answer(err) from None


@router.post("/holds/{hold_id}/release", summary="Deliver a held message",
             operation_id="releaseHold", response_model=Released, responses=responses(404, 409),
             dependencies=[require("ops")])  # fmt: skip
async def release_hold(request: Request, hold_id: HoldId) -> Any:
    from relay.store import secrets_store

    s = request.app.state.settings
    engine = request.app.state.engine
    key = (bytes.fromhex(s.bounce.secret) if s.bounce.secret
           else await secrets_store.get_or_create(engine, "verp_key"))
    try:
        delivery = await holds.release(engine, hold_id, by=_who(request), verp_key=key,
                                       domain=s.relay.domain, bounce_prefix=s.bounce.local_prefix)
    except holds.HoldError as err:
        raise answer(err) from None
    return JSONResponse({"id": hold_id, "delivery_id": delivery})


@router.post("/holds/{hold_id}/refuse", summary="Refuse a held message (the sender is told)",
             operation_id="refuseHold", response_model=Refused, responses=responses(404, 409),
             dependencies=[require("ops")])  # fmt: skip
async def refuse_hold(request: Request, hold_id: HoldId, body: RefuseIn) -> Any:
    s = request.app.state.settings
    try:
        sent = await holds.refuse(request.app.state.engine, hold_id, by=_who(request),
                                  reason=body.reason, domain=s.relay.domain,
                                  marketplace=s.relay.marketplace)
    except holds.HoldError as err:
        raise answer(err) from None
    return JSONResponse({"id": hold_id, "notified": sent})
