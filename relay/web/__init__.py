"""The Message Center: read-only HTML pages for ops, mounted into the API app at ``/ui``.

Kept free of imports from ``relay.api`` at module level: ``relay.api`` imports this
package while it is itself still being imported, so the pages are built lazily in
``mount``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine
    from starlette.routing import Mount

    from relay.settings import Settings

PREFIX = "/ui"


def mount(settings: Settings, engine: AsyncEngine) -> Mount:
    """The Message Center as one Starlette ``Mount`` for ``relay.api.create_app``."""
    from starlette.routing import Mount

    from relay.web.app import create_web_app

    return Mount(PREFIX, app=create_web_app(settings, engine), name="ui")
