"""The provisioning and ops HTTP API (Starlette on uvicorn).

``create_app(settings, engine)`` builds the ASGI app; ``relay api`` serves it, and
``relay.api.server.serve_api`` lets ``relay serve`` run it on the relay's own loop.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import relay
from relay.api import marketplace, ops
from relay.api.framework import Tokens, http_exception, server_error
from relay.api.openapi import document
from relay.settings import Settings
from relay.templates import TemplateSender
from relay.web import mount as mount_message_center

HANDLERS = [*marketplace.HANDLERS, *ops.HANDLERS]


def _route_path(path: str) -> str:
    return path.replace("{archive_id}", "{archive_id:int}")


def create_app(settings: Settings, engine: AsyncEngine) -> Starlette:
    specs = [h.spec for h in HANDLERS]  # type: ignore[attr-defined]
    openapi = document(specs, getattr(relay, "__version__", "0"))

    async def openapi_json(request: Request) -> Response:
        """Public: the shape of the API reveals nothing about orders or mail."""
        return JSONResponse(openapi)

    routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
    routes += [
        Route(_route_path(h.spec.path), h, methods=[h.spec.method])  # type: ignore[attr-defined]
        for h in HANDLERS
    ]
    routes.append(mount_message_center(settings, engine))  # type: ignore[arg-type]  # /ui
    handlers: dict[Any, Any] = {HTTPException: http_exception, Exception: server_error}
    app = Starlette(routes=routes, exception_handlers=handlers)
    app.state.settings = settings
    app.state.engine = engine
    app.state.tokens = Tokens.from_settings(settings.api)
    app.state.template_sender = TemplateSender(settings, engine)
    app.state.openapi = openapi
    return app
