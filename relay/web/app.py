"""The Message Center's Starlette app: login, search, thread, record, report.

Read-only by construction: every page is a GET that reads the archive; the only POSTs are
login and logout, both checked to come from our own pages (``session.same_site``). Each
page requires a valid session cookie; without one, any path (even one that does not
exist) redirects to the login form, so an outsider learns nothing about the site.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode

import structlog
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.api.models import MAX_ID, ORDER_ID_PATTERN, ArchiveQuery
from relay.core.errors import ReportInvalid, StatementTimeout
from relay.settings import Settings
from relay.store import archive, orders, reports
from relay.store.search import QueryError
from relay.web import holds as web_holds
from relay.web import mime, views
from relay.web.html import SECURITY_HEADERS
from relay.web.session import COOKIE, Sessions, clear_cookie, safe_next, same_site, set_cookie

log = structlog.get_logger("relay.web")
CSS = (Path(__file__).parent / "static" / "web.css").read_bytes()
MAX_LOGIN_BODY = 4096
THREAD_LIMIT = 200
SEARCH_FIELDS = ("text", "order_id", "seller", "buyer", "party", "direction", "verdict",
                 "kind", "finding_kind", "since", "until", "before_id")  # fmt: skip
Page = Callable[[Request], Awaitable[Response]]


def html(body: str, status: int = 200) -> HTMLResponse:
    return HTMLResponse(body, status_code=status)


def _to_login(request: Request) -> Response:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    query = "?" + urlencode({"next": target}) if safe_next(target) == target else ""
    return RedirectResponse(f"/ui/login{query}", status_code=303)


def _logged_in(request: Request) -> bool:
    sessions: Sessions = request.app.state.sessions
    return sessions.valid(request.cookies.get(COOKIE))


def authed(fn: Page) -> Page:
    """Every page but the login form and the stylesheet goes through this."""

    async def handler(request: Request) -> Response:
        if not _logged_in(request):
            return _to_login(request)
        try:
            return await fn(request)
        except HTTPException as exc:
            return await not_found(request, exc)
        except Exception as exc:  # answered here, so the traceback (and any SQL parameters
            return await server_error(request, exc)  # in it) never reaches uvicorn's log

    handler.__name__ = fn.__name__
    handler.__doc__ = fn.__doc__
    return handler


async def login_form(request: Request) -> Response:
    if _logged_in(request):
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    nxt = safe_next(request.query_params.get("next"))
    return html(views.login(nxt))


async def _form(request: Request) -> dict[str, str]:
    """A urlencoded form body, read by hand (no multipart parser needed), size-capped."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_LOGIN_BODY:
            raise HTTPException(413)
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


async def login(request: Request) -> Response:
    if not same_site(request):
        log.warning("web.login.cross_site")
        return html(views.login("/ui/", "Cross-site login refused."), 403)
    form = await _form(request)
    nxt = safe_next(form.get("next"))
    sessions: Sessions = request.app.state.sessions
    token = form.get("token", "")
    if not sessions.token_ok(token):
        log.warning("web.login.failed")
        return html(views.login(nxt, "That is not an ops token."), 401)
    log.info("web.login")
    response = RedirectResponse(nxt, status_code=303)
    set_cookie(response, request, sessions.issue(token))
    return response


async def logout(request: Request) -> Response:
    if not same_site(request):
        return html(views.message("Log out", "Cross-site logout refused."), 403)
    response = RedirectResponse("/ui/login", status_code=303)
    clear_cookie(response, request)
    return response


async def stylesheet(request: Request) -> Response:
    return Response(CSS, media_type="text/css")


@authed
async def search(request: Request) -> Response:
    """Search the archive, newest first; an empty form lists the latest records."""
    q = {k: v.strip() for k in SEARCH_FIELDS if (v := request.query_params.get(k, "")).strip()}
    shown = {k: v for k, v in q.items() if k != "before_id"}
    try:
        parsed = ArchiveQuery.model_validate(q)
    except ValidationError as err:
        first = err.errors()[0]
        name = ".".join(str(p) for p in first["loc"])
        msg = f"{name}: {first['msg'].removeprefix('Value error, ')}"
        return html(views.results(shown, [], False, msg), 422)
    f = archive.SearchFilter(**parsed.model_dump())
    try:
        rows = await _search(request, f)
    except QueryError as err:
        return html(views.results(shown, [], False, f"text: {err}"), 422)
    except StatementTimeout as err:  # the database cancelled it: say so, plainly
        return html(views.results(shown, [], False, timed_out(err)), 503)
    return html(views.results(shown, rows, len(rows) == f.limit, ""))


async def _search(request: Request, f: archive.SearchFilter) -> list[dict[str, Any]]:
    """archive.search bounded by ``archive.search_timeout``, as the API's and the CLI's
    searches are: a search whose plan goes wrong is cancelled by the database, not left
    to hold a connection (and the page) for minutes."""
    settings: Settings = request.app.state.settings
    limit = settings.archive.search_timeout.total_seconds()
    return await archive.search(request.app.state.engine, f, timeout=limit)


def timed_out(err: StatementTimeout) -> str:
    """The page's words for a search the database cancelled (the API's are the same)."""
    return (
        f"The search ran longer than archive.search_timeout ({err.seconds:g} s) and was "
        "cancelled. Narrow it (an order, a seller, a time range) or raise the setting."
    )


@authed
async def thread(request: Request) -> Response:
    """One order's messages in time order, each with verdict, findings and text."""
    order_id = request.path_params["order_id"]
    if not re.fullmatch(ORDER_ID_PATTERN, order_id):
        raise HTTPException(404)
    engine: AsyncEngine = request.app.state.engine
    settings: Settings = request.app.state.settings
    try:
        order: dict[str, Any] | None = (
            await orders.get_order(engine, settings.relay.domain, order_id)
        ).as_dict()
    except orders.OrderError:
        order = None
    try:
        rows = await _search(request, archive.SearchFilter(order_id=order_id, limit=THREAD_LIMIT))
    except StatementTimeout as err:
        return html(views.message(f"Order {order_id}", timed_out(err)), 503)
    if order is None and not rows:
        raise HTTPException(404)
    bodies = await archive.bodies(engine, [int(r["id"]) for r in rows])
    items = []
    for row in reversed(rows):
        original, delivered = bodies[int(row["id"])]
        data = delivered if delivered is not None else original
        items.append({"row": row, "decoded": mime.decode(bytes(data)),
                      "delivered": delivered is not None})  # fmt: skip
    title = f"Order {order_id}"
    if len(rows) == THREAD_LIMIT:
        title += f" (latest {THREAD_LIMIT} records)"
    return html(views.thread(title, order, items))


async def _record(request: Request) -> dict[str, Any]:
    archive_id = request.path_params["archive_id"]
    if not 1 <= archive_id <= MAX_ID:  # beyond the database's BIGINT: no such record
        raise HTTPException(404)
    rec = await archive.get_record(request.app.state.engine, archive_id)
    if rec is None:
        raise HTTPException(404)
    return rec


@authed
async def record(request: Request) -> Response:
    """One record: metadata, findings, and original beside delivered."""
    rec = await _record(request)
    rec["findings"] = json.loads(rec["findings"] or "[]")
    rec["auth"] = json.loads(rec["auth"] or "{}")
    rec["created_at"] = rec["created_at"].isoformat()
    original = mime.decode(bytes(rec["original"]))
    delivered = mime.decode(bytes(rec["delivered"])) if rec["delivered"] is not None else None
    return html(views.record(rec, original, delivered))


def _eml(part: str) -> Page:
    @authed
    async def download(request: Request) -> Response:
        """The stored bytes, as an attachment (never displayed inline by the browser)."""
        rec = await _record(request)
        if rec[part] is None:
            raise HTTPException(404)
        name = f"{int(rec['id'])}-{part}.eml"
        disposition = {"Content-Disposition": f'attachment; filename="{name}"'}
        return Response(bytes(rec[part]), media_type="message/rfc822", headers=disposition)

    download.__name__ = f"{part}_eml"
    return download


@authed
async def response_times(request: Request) -> Response:
    """The 24-hour response rule per seller, as ``relay report response-times``."""
    days_text = request.query_params.get("days", "30")
    seller = request.query_params.get("seller", "").strip()
    days = int(days_text) if days_text in ("7", "30", "90") else 0
    try:
        if not days:
            raise ReportInvalid("days must be one of 7, 30, 90", "days")
        if seller:
            seller = orders.normalize_email(seller)
        data = await reports.response_times(request.app.state.engine, days=days,
                                            seller=seller or None)  # fmt: skip
    except (reports.ReportError, orders.OrderError) as err:
        return html(views.report({}, days, seller, str(err)), 422)
    return html(views.report(data, days, seller))


async def not_found(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 and ours: the login form for a stranger, a page for ops."""
    if not _logged_in(request):
        return _to_login(request)
    status = getattr(exc, "status_code", 404)
    text = {404: "Not found.", 405: "Method not allowed.", 413: "Too large."}.get(status, "Error.")
    return html(views.message(text), status)


async def server_error(request: Request, exc: Exception) -> Response:
    """Our fault; nothing internal on the page (a DBAPIError's text may carry data)."""
    from sqlalchemy.exc import DBAPIError

    unavailable = isinstance(exc, DBAPIError | OSError | TimeoutError)
    log.error("web.error", error=type(exc).__name__)
    status, text = (503, "Temporarily unavailable, retry.") if unavailable else (500, "Error.")
    return html(views.message(text, logged_in=False), status)


class SecurityHeaders:
    """CSP and friends on every response, the error pages included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with)


def create_web_app(settings: Settings, engine: AsyncEngine) -> Starlette:
    routes = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/static/web.css", stylesheet, methods=["GET"]),
        Route("/", search, methods=["GET"]),
        Route("/orders/{order_id}", thread, methods=["GET"]),
        Route("/records/{archive_id:int}", record, methods=["GET"]),
        Route("/records/{archive_id:int}/original.eml", _eml("original"), methods=["GET"]),
        Route("/records/{archive_id:int}/delivered.eml", _eml("delivered"), methods=["GET"]),
        Route("/reports/response-times", response_times, methods=["GET"]),
        Route("/holds", authed(web_holds.held), methods=["GET"]),  # issue 12: held messages
    ]
    handlers: dict[Any, Any] = {HTTPException: not_found, Exception: server_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.add_middleware(SecurityHeaders)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = Sessions(settings.api.ops_tokens)
    return app
