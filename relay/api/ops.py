"""Ops scope: the archive (search, records, their .eml) and the response-time report.

This is the archive: real addresses are part of it and ops may see them.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse, Response

from relay.api import models as m
from relay.api.errors import ApiError, not_found, require, responses
from relay.db.engine import StatementTimeout
from relay.store import archive, reports
from relay.store.search import QueryError

OPS = ("ops",)
router = APIRouter(prefix="/v1", dependencies=[require(*OPS)])
ArchiveId = Annotated[int, Path(ge=1, le=m.MAX_ID, description="archive record id")]


@router.get("/archive", summary="Search the archive, newest first", operation_id="searchArchive",
            response_model=m.ArchivePage, responses=responses())  # fmt: skip
async def search_archive(request: Request, query: Annotated[m.ArchiveQuery, Query()]) -> Any:
    f = archive.SearchFilter(**query.model_dump())
    limit = request.app.state.settings.archive.search_timeout.total_seconds()
    try:
        rows = await archive.search(request.app.state.engine, f, timeout=limit)
    except QueryError:  # text without a searchable word (only punctuation) matches nothing
        rows = []
    except StatementTimeout as err:  # the database cancelled it: a plain reason, no hang
        raise ApiError(503, "search_timeout", timeout_reason(err.seconds)) from None
    more = len(rows) == f.limit
    return JSONResponse({"items": rows, "next_before_id": rows[-1]["id"] if more else None})


def timeout_reason(seconds: float) -> str:
    """What a client (or the CLI) is told about a search the database cancelled."""
    return (
        f"the search ran longer than archive.search_timeout ({seconds:g} s) and was "
        "cancelled; narrow it (an order, a seller, a time range) or raise the setting"
    )


@router.get("/archive/{archive_id}", summary="One archive record with its events",
            operation_id="getRecord", response_model=m.ArchiveRecord,
            responses=responses(404))  # fmt: skip
async def get_record(request: Request, archive_id: ArchiveId) -> Any:
    rec = await archive.get_record(request.app.state.engine, archive_id)
    if rec is None:
        raise not_found(f"no archive record {archive_id}")
    out = {k: v for k, v in rec.items() if k not in ("original", "delivered")}
    out["findings"] = json.loads(out["findings"])
    out["auth"] = json.loads(out["auth"])
    out["created_at"] = rec["created_at"].isoformat()
    out["original_bytes"] = len(rec["original"])
    out["delivered_bytes"] = len(rec["delivered"]) if rec["delivered"] else None
    return JSONResponse(out)


def _eml(part: str) -> None:
    @router.get(f"/archive/{{archive_id}}/{part}.eml",
                summary=f"The message as {'received' if part == 'original' else 'delivered'}",
                operation_id=f"get{part.capitalize()}Eml", name=f"get_{part}_eml",
                response_class=Response,
                responses={200: {"content": {"message/rfc822": {"schema": {"type": "string"}}},
                                 "description": "the message"}, **responses(404)})  # fmt: skip
    async def fetch(request: Request, archive_id: ArchiveId) -> Response:
        rec = await archive.get_record(request.app.state.engine, archive_id)
        if rec is None:
            raise not_found(f"no archive record {archive_id}")
        if rec[part] is None:
            raise not_found(f"record {archive_id} has no {part} copy (verdict {rec['verdict']})")
        return Response(
            bytes(rec[part]),
            media_type="message/rfc822",
            headers={"Content-Disposition": f'attachment; filename="{archive_id}-{part}.eml"'},
        )


_eml("original")
_eml("delivered")


@router.get("/reports/response-times",
            summary="Per seller: late-response rate, average response time, open overdue messages",
            operation_id="responseTimes", response_model=m.ResponseTimes,
            responses=responses())  # fmt: skip
async def response_times(request: Request, query: Annotated[m.ReportQuery, Query()]) -> Any:
    report = await reports.response_times(
        request.app.state.engine, days=int(query.days), seller=query.seller
    )
    return JSONResponse(report)
