"""The Message Center's searches are bounded by ``archive.search_timeout`` as the API's
and the CLI's are (relay.db.engine.time_limit), on SQLite and PostgreSQL: past it the page
says so in plain words with a 503, names the setting, and leaks nothing of the database;
with the limit the settings give, the same search answers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx

from relay.api import create_app
from tests.api.test_search import SLOW_ROWS, _bulk_archive
from tests.web.conftest import BASE, log_in


def _limited(settings: Any, seconds: float) -> Any:
    archive = settings.archive.model_copy(update={"search_timeout": timedelta(seconds=seconds)})
    return settings.model_copy(update={"archive": archive})


async def _pages(settings: Any, engine: Any, *paths: str) -> list[httpx.Response]:
    transport = httpx.ASGITransport(app=create_app(settings, engine))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as c:
        assert (await log_in(c)).status_code == 303
        return [await c.get(path) for path in paths]


async def test_a_search_past_its_limit_is_a_plain_503(settings, engine, order) -> None:
    await _bulk_archive(engine, order.id, SLOW_ROWS, "tracking parcel")
    blocker = None
    if engine.dialect.name == "postgresql":  # a lock held elsewhere: waiting on it counts
        blocker = await engine.connect()
        await blocker.begin()
        await blocker.exec_driver_sql("LOCK TABLE archive IN ACCESS EXCLUSIVE MODE")
    try:
        # a filter no index serves and nothing matches walks every record; and a thread
        slow, thread = await _pages(
            _limited(settings, 0.001), engine, "/ui/?finding_kind=phone_number",
            f"/ui/orders/{order.id}",
        )  # fmt: skip
    finally:
        if blocker is not None:
            await blocker.rollback()
            await blocker.close()
    assert slow.status_code == 503, slow.text
    assert "archive.search_timeout (0.001 s)" in slow.text and "cancelled" in slow.text
    assert 'name="text"' in slow.text  # the search form is still there to narrow it
    for word in ("Traceback", "statement", "sqlite", "asyncpg", "canceling"):
        assert word not in slow.text
    if engine.dialect.name == "postgresql":  # on SQLite an index may answer within 1 ms
        assert thread.status_code == 503
    if thread.status_code != 200:
        assert thread.status_code == 503 and "archive.search_timeout" in thread.text
    # the settings' own limit (10 s): the same search answers
    (fine,) = await _pages(settings, engine, "/ui/?finding_kind=phone_number")
    assert fine.status_code == 200 and "archive.search_timeout" not in fine.text
