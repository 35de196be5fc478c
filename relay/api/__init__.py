"""The provisioning and ops HTTP API (FastAPI on uvicorn).

``create_app(settings, engine)`` builds the ASGI app; ``relay api`` serves it, and
``relay.api.server.serve_api`` lets ``relay serve`` run it on the relay's own loop. The
OpenAPI document is FastAPI's, generated from the pydantic models the handlers validate
with, so the document and the code cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine

import relay
from relay.settings import Settings

TITLE = "relay API"


def build_api(settings: Settings | None = None) -> Any:
    """The FastAPI app with every route (no database needed: ``relay api openapi``)."""
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException

    from relay.api import choices, errors, holds, marketplace, ops
    from relay.core.errors import RelayError

    class RelayApi(FastAPI):
        def openapi(self) -> dict[str, Any]:
            """FastAPI's document plus the bearer scheme every /v1 operation requires."""
            from fastapi.openapi.utils import get_openapi

            if self.openapi_schema is None:
                doc = get_openapi(
                    title=self.title, version=self.version, description=self.description,
                    routes=self.routes,
                )  # fmt: skip
                doc.setdefault("components", {})["securitySchemes"] = {
                    "bearer": {"type": "http", "scheme": "bearer"}
                }
                for path, operations in doc["paths"].items():
                    for op in operations.values():
                        if path.startswith("/v1/"):
                            op["security"] = [{"bearer": []}]
                self.openapi_schema = doc
            return self.openapi_schema

    app = RelayApi(
        title=TITLE,
        version=getattr(relay, "__version__", "0"),
        description="Orders and their aliases (marketplace scope); the archive and reports "
        "(ops scope). Bearer tokens from api.marketplace_tokens / api.ops_tokens.",
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        exception_handlers={
            errors.ApiError: errors.api_error,
            RelayError: errors.relay_error,  # by type (relay.core.errors), never by text
            RequestValidationError: errors.validation_error,
            HTTPException: errors.http_exception,
        },
    )
    app.include_router(marketplace.router)
    app.include_router(ops.router)
    app.include_router(choices.router)  # opt-outs, no reply needed, limits (issue 13)
    app.include_router(holds.router)  # held messages (issue 12)
    app.state.api_routes = [*marketplace.router.routes, *ops.router.routes, *choices.router.routes,
                            *holds.router.routes]

    @app.get("/", include_in_schema=False)
    async def root() -> Any:
        """A browser at the API root wants the Message Center."""
        from fastapi.responses import RedirectResponse

        return RedirectResponse("/ui/", status_code=307)

    return app


def create_app(settings: Settings, engine: AsyncEngine) -> Any:
    from relay.api import errors
    from relay.templates import TemplateSender
    from relay.web import mount as mount_message_center

    app = build_api(settings)
    tokens = errors.Tokens.from_settings(settings.api)
    app.router.routes.append(mount_message_center(settings, engine))  # /ui
    app.add_middleware(errors.GateMiddleware, tokens=tokens)
    app.add_middleware(errors.CatchAllMiddleware)
    app.state.settings = settings
    app.state.engine = engine
    app.state.tokens = tokens
    app.state.template_sender = TemplateSender(settings, engine)
    return app
