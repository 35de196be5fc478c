"""The API's one error shape, bearer-token scopes and request limits, on FastAPI.

Order of answers: no or a wrong token is 401 before anything else (the middleware, so
not even a malformed body or an unknown path is revealed), a token of the wrong scope
403 (a dependency), then FastAPI's validation 422 naming the field; our own errors are
the same JSON shape, and nothing internal ever reaches a response body. An error of the
relay's (relay.core.errors) is answered by its type (``STATUS``), never by its words.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import structlog
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from relay.api import models as m
from relay.core.errors import Conflict, Invalid, NotFound, Refusal, RelayError, TemporaryError

log = structlog.get_logger("relay.api")
SCOPES = ("marketplace", "ops")
MAX_BODY = 256 * 1024
API_PREFIX = "/v1/"
PUBLIC = ("/openapi.json", "/ui/", "/ui")  # everything else needs a token, even unknown paths


def is_public(path: str) -> bool:
    return path == "/" or path in PUBLIC or path.startswith("/ui/")


class ApiError(RelayError):
    """An answer other than success, worded for the API client: the API's own (401, 403,
    413, 422 of validation) or one of our errors translated by ``answer``."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(err: ApiError, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"status": err.status, "code": err.code, "message": err.message, "field": err.field}
    headers = dict(headers or {})
    if err.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="relay"'
    return JSONResponse({"error": body}, status_code=err.status, headers=headers or None)


# The HTTP answer to each category of relay.core.errors, by type: an error's words are for
# the client to read, never for choosing the status.
STATUS: tuple[tuple[type[RelayError], int, str], ...] = (
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (Invalid, 422, "invalid"),
    (Refusal, 422, "invalid"),
    (TemporaryError, 503, "unavailable"),
)


def status_of(err: RelayError) -> tuple[int, str] | None:
    """(status, code) for an error of ours; None for one that is our own fault (500)."""
    for cls, status, code in STATUS:
        if isinstance(err, cls):
            return status, code
    return None


def answer(err: RelayError, field: str | None = None) -> ApiError:
    """The client's answer to one of our errors. ``field`` names the input a route
    validated, for an Invalid error that names none itself; 404 and 409 name a field only
    when the error does. No category: our fault, 500 and nothing internal said."""
    found = status_of(err)
    if found is None:
        log.error("api.error", error=type(err).__name__)
        return ApiError(500, "internal", "internal error")
    status, code = found
    if status == 503:
        return ApiError(503, code, "temporarily unavailable, retry")
    named = err.field if err.field is not None else field if isinstance(err, Invalid) else None
    return ApiError(status, code, str(err), named)


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", what)


def invalid(field_name: str | None, message: str) -> ApiError:
    return ApiError(422, "invalid", message, field_name)


@dataclass(frozen=True)
class Tokens:
    """Configured tokens per scope. Comparison walks every token in constant time each,
    so neither the match nor its position shows in the response time."""

    by_scope: dict[str, tuple[bytes, ...]]

    @classmethod
    def from_settings(cls, api: Any) -> Tokens:
        return cls({
            "marketplace": tuple(t.encode() for t in api.marketplace_tokens),
            "ops": tuple(t.encode() for t in api.ops_tokens),
        })  # fmt: skip

    def scopes_of(self, presented: str) -> set[str]:
        given = presented.encode()
        found = set()
        for scope, tokens in self.by_scope.items():
            for token in tokens:
                if hmac.compare_digest(given, token):
                    found.add(scope)
        return found


def bearer(headers: Mapping[str, str]) -> str | None:
    value = headers.get("authorization", "")
    kind, _, token = value.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


UNAUTHORIZED = ApiError(401, "unauthorized", "a valid bearer token is required")
TOO_LARGE = ApiError(413, "too_large", f"request body over {MAX_BODY} bytes")


class GateMiddleware:
    """401 for requests without a valid token (all but the public paths, so an outsider
    learns nothing, not even which paths exist); 413 for bodies over MAX_BODY (declared
    or streamed). Pure ASGI, so it runs before routing and body parsing."""

    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app, self.tokens = app, tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        token = bearer(request.headers)
        scopes = self.tokens.scopes_of(token) if token else set()
        if not scopes:
            await error_response(UNAUTHORIZED)(scope, receive, send)
            return
        scope.setdefault("state", {})["scopes"] = scopes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY):
            await error_response(TOO_LARGE)(scope, receive, send)
            return
        # Read the body here, at most MAX_BODY (a chunked body is cut off at the limit
        # too), and hand it on in one piece.
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > MAX_BODY:
                await error_response(TOO_LARGE)(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body, delivered = b"".join(chunks), False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def require(*allowed: str) -> Any:
    """A dependency: the request's token must carry one of ``allowed`` scopes (403)."""

    def check(request: Request) -> set[str]:
        scopes: set[str] = getattr(request.state, "scopes", set())
        if not scopes:
            raise UNAUTHORIZED
        if not scopes & set(allowed):
            raise ApiError(403, "forbidden", f"this token lacks the {' or '.join(allowed)} scope")
        return scopes

    return Depends(check)


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The error answers an operation documents (all in the one error shape)."""
    text = {400: "Body not readable (not UTF-8)", 401: "No or wrong bearer token",
            403: "Wrong scope", 404: "Not found", 409: "Conflict", 413: "Body too large",
            422: "Invalid input (the field is named)",
            503: "Database unavailable, retry later"}  # fmt: skip
    wanted = sorted({400, 401, 403, 422, 503, *codes})
    return {c: {"model": m.Error, "description": text.get(c, "Error")} for c in wanted}


def _field_of(err: RequestValidationError) -> tuple[str | None, str]:
    first = err.errors()[0]
    loc = [str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path")]
    name = ".".join(loc) or None
    msg = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    if first.get("type") == "extra_forbidden":
        msg = "unknown field"
    elif first.get("type") == "missing":
        msg = "field required"
    elif first.get("type") == "json_invalid":
        name, msg = None, "the request body is not valid JSON"
    return name, f"{name}: {msg}" if name else msg


async def api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ApiError)
    return error_response(exc)


async def relay_error(request: Request, exc: Exception) -> Response:
    """One of our errors that no route translated: its status by its type (``STATUS``);
    one of no category is ours to fix (``server_error``: 500, logged by type)."""
    assert isinstance(exc, RelayError)
    if status_of(exc) is None:
        return await server_error(request, exc)
    return error_response(answer(exc))


async def validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    name, msg = _field_of(exc)
    return error_response(invalid(name, msg))


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first
    route's when two routes share a path, e.g. GET and POST of /senders)."""
    path = request.url.path
    methods: set[str] = set()
    for route in request.app.state.api_routes:
        if route.path_regex.match(path):
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405 in the error shape; 405 says ``Allow``."""
    assert isinstance(exc, HTTPException)
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        headers["Allow"] = allowed_methods(request) or headers.get("Allow", "")
    return error_response(ApiError(exc.status_code, code, str(exc.detail)), headers=headers)


async def server_error(request: Request, exc: Exception) -> Response:
    """Our fault: 503 when the database is unreachable (retry later), 500 otherwise;
    the body never carries internal detail, the log never the path (it carries ids)."""
    from sqlalchemy.exc import DBAPIError

    route = request.scope.get("route")
    op = getattr(route, "operation_id", None) or getattr(route, "name", "unknown")
    if isinstance(exc, DBAPIError | OSError | TimeoutError):
        log.error("api.unavailable", op=op, error=type(exc).__name__)
        return error_response(ApiError(503, "unavailable", "temporarily unavailable, retry"))
    log.error("api.error", op=op, error=type(exc).__name__)
    return error_response(ApiError(500, "internal", "internal error"))


class CatchAllMiddleware:
    """Answers our own faults itself (``server_error``) and logs one line per API request
    by operation, never by path: paths carry order ids and party addresses. Starlette's
    own last-resort handler would re-raise, and the traceback (with any SQL parameters
    in it) would reach uvicorn's log."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 0

        async def tracking(message: Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started, status = True, int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                raise
            response = await server_error(Request(scope), exc)
            status = response.status_code
            await response(scope, receive, send)
        if scope["path"].startswith(API_PREFIX):
            route = scope.get("route")
            op = getattr(route, "operation_id", None) or "unknown"
            log.info("api.request", op=op, status=status)
