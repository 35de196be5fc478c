"""The API's small framework: one error shape, bearer-token scopes, validated input.

Every endpoint is declared with ``@endpoint``, which records what the OpenAPI document
needs and wraps the handler so that, in this order: the token is checked (401 for none or
a wrong one, 403 for the wrong scope, before anything about the resource is revealed),
the path, query and body are validated (422 naming the field), and our own errors become
the one JSON error shape. Nothing internal ever reaches a response body.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

log = structlog.get_logger("relay.api")
SCOPES = ("marketplace", "ops")
MAX_BODY = 256 * 1024


class ApiError(Exception):
    """An answer other than success, worded for the API client."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


def error_response(err: ApiError) -> JSONResponse:
    body = {"status": err.status, "code": err.code, "message": err.message, "field": err.field}
    headers = {"WWW-Authenticate": 'Bearer realm="relay"'} if err.status == 401 else None
    return JSONResponse({"error": body}, status_code=err.status, headers=headers)


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


def bearer(request: Request) -> str | None:
    value = request.headers.get("authorization", "")
    kind, _, token = value.partition(" ")
    if kind.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def authorise(request: Request, allowed: tuple[str, ...]) -> set[str]:
    tokens: Tokens = request.app.state.tokens
    token = bearer(request)
    scopes = tokens.scopes_of(token) if token else set()
    if not scopes:
        raise ApiError(401, "unauthorized", "a valid bearer token is required")
    if not scopes & set(allowed):
        raise ApiError(403, "forbidden", f"this token lacks the {' or '.join(allowed)} scope")
    return scopes


def _field_of(err: ValidationError, prefix: str = "") -> tuple[str | None, str]:
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"] if p != "__root__")
    name = f"{prefix}{loc}" if loc else (prefix.rstrip(".") or None)
    msg = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        msg = "unknown field"
    elif first["type"] == "missing":
        msg = "field required"
    return name, f"{name}: {msg}" if name else msg


def parse_model(model: type[BaseModel], data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as err:
        name, msg = _field_of(err)
        raise invalid(name, msg) from None


async def read_json(request: Request) -> Any:
    too_large = ApiError(413, "too_large", f"request body over {MAX_BODY} bytes")
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit() or int(declared) > MAX_BODY:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():  # a chunked body is cut off at the limit too
        size += len(chunk)
        if size > MAX_BODY:
            raise too_large
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise invalid(None, "the request body is not valid JSON") from None


@dataclass(frozen=True)
class Spec:
    """What the OpenAPI document says about one endpoint."""

    method: str
    path: str
    scopes: tuple[str, ...]
    summary: str
    operation_id: str
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    response: type[BaseModel] | None = None
    status: int = 200
    media_type: str = "application/json"
    path_params: dict[str, str] = field(default_factory=dict)
    errors: tuple[int, ...] = ()


Handler = Callable[..., Awaitable[Response]]


def endpoint(spec: Spec) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """Register a handler ``fn(request, *, query=..., body=..., **path_params)``."""

    def wrap(fn: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def handle(request: Request) -> Response:
            response = await _handle(request)
            # The operation, not the path: paths carry order ids and party addresses.
            log.info("api.request", op=spec.operation_id, status=response.status_code)
            return response

        async def _handle(request: Request) -> Response:
            try:
                request.state.scopes = authorise(request, spec.scopes)
                kwargs: dict[str, Any] = dict(request.path_params)
                if spec.query is not None:
                    kwargs["query"] = parse_model(spec.query, dict(request.query_params))
                elif request.query_params:
                    name = next(iter(request.query_params))
                    raise invalid(name, f"{name}: unknown query parameter")
                if spec.body is not None:
                    kwargs["body"] = parse_model(spec.body, await read_json(request))
                return await fn(request, **kwargs)
            except ApiError as err:
                return error_response(err)
            except Exception as exc:  # answered here: a re-raised DBAPIError's text (and
                return await server_error(request, exc)  # so the log) carries SQL params

        handle.__name__ = fn.__name__
        handle.__doc__ = fn.__doc__
        handle.spec = spec  # type: ignore[attr-defined]
        return handle

    return wrap


async def http_exception(request: Request, exc: Exception) -> Response:
    """Starlette's own 404/405: answered as 401 to a caller without a valid token, so an
    unauthenticated client learns nothing, not even which paths exist."""
    assert isinstance(exc, HTTPException)
    token = bearer(request)
    if not (token and request.app.state.tokens.scopes_of(token)):
        return error_response(ApiError(401, "unauthorized", "a valid bearer token is required"))
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return error_response(ApiError(exc.status_code, code, str(exc.detail)))


async def server_error(request: Request, exc: Exception) -> Response:
    """Our fault: 503 when the database is unreachable (retry later), 500 otherwise;
    the body never carries internal detail."""
    from sqlalchemy.exc import DBAPIError

    endpoint = request.scope.get("endpoint")
    op = getattr(getattr(endpoint, "spec", None), "operation_id", "unknown")  # never the path
    if isinstance(exc, DBAPIError | OSError | TimeoutError):
        log.error("api.unavailable", op=op, error=type(exc).__name__)
        return error_response(ApiError(503, "unavailable", "temporarily unavailable, retry"))
    log.error("api.error", op=op, error=type(exc).__name__)
    return error_response(ApiError(500, "internal", "internal error"))
