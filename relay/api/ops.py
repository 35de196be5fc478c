"""Ops scope: the archive (search, records, their .eml) and the response-time report.

This is the archive: real addresses are part of it and ops may see them.
"""

from __future__ import annotations

import json

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from relay import archive, reports
from relay.api import models as m
from relay.api.framework import Spec, endpoint, invalid, not_found
from relay.search import QueryError

OPS = ("ops",)
RECORD_PARAM = {"archive_id": "archive record id (integer)"}


@endpoint(Spec("GET", "/v1/archive", OPS, "Search the archive, newest first", "searchArchive",
               query=m.ArchiveQuery, response=m.ArchivePage, errors=(422,)))  # fmt: skip
async def search_archive(request: Request, query: m.ArchiveQuery) -> Response:
    f = archive.SearchFilter(**query.model_dump())
    try:
        rows = await archive.search(request.app.state.engine, f)
    except QueryError as err:
        raise invalid("text", f"text: {err}") from None
    more = len(rows) == f.limit
    return JSONResponse({"items": rows, "next_before_id": rows[-1]["id"] if more else None})


@endpoint(Spec("GET", "/v1/archive/{archive_id}", OPS, "One archive record with its events",
               "getRecord", response=m.ArchiveRecord, path_params=RECORD_PARAM,
               errors=(404,)))  # fmt: skip
async def get_record(request: Request, archive_id: int) -> Response:
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


def _eml(part: str) -> object:
    @endpoint(Spec("GET", f"/v1/archive/{{archive_id}}/{part}.eml", OPS,
                   f"The message as {'received' if part == 'original' else 'delivered'}",
                   f"get{part.capitalize()}Eml", media_type="message/rfc822",
                   path_params=RECORD_PARAM, errors=(404,)))  # fmt: skip
    async def fetch(request: Request, archive_id: int) -> Response:
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

    fetch.__name__ = f"get_{part}_eml"
    return fetch


get_original = _eml("original")
get_delivered = _eml("delivered")


@endpoint(Spec("GET", "/v1/reports/response-times", OPS,
               "Per seller: late-response rate, average response time, open overdue messages",
               "responseTimes", query=m.ReportQuery, response=m.ResponseTimes))  # fmt: skip
async def response_times(request: Request, query: m.ReportQuery) -> Response:
    report = await reports.response_times(
        request.app.state.engine, days=int(query.days), seller=query.seller
    )
    return JSONResponse(report)


HANDLERS = [search_archive, get_record, get_original, get_delivered, response_times]
