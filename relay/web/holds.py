"""Message Center page: the messages the content policy held (relay.store.holds), read-only.

The Message Center never changes anything (its only POSTs are login and logout), so the
page lists each hold with the rules that could not decide, links to the record, and says
how to decide: ``relay hold release|refuse`` or ``POST /v1/holds/{id}/release|refuse``.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from relay.store import holds
from relay.web import views


async def held(request: Request) -> Response:
    show_all = request.query_params.get("all") == "1"
    rows = await holds.list_holds(request.app.state.engine, pending=not show_all)
    return HTMLResponse(views.render("holds.html", "Held messages", holds=rows,
                                     show_all=show_all))
