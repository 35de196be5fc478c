"""The Message Center in headless Chromium, against real SMTP traffic.

A relay with the real content policy takes a buyer's message with a phone number (which
it redacts) and the seller's answer; ``relay api``'s uvicorn server serves the pages on
loopback; Chromium logs in with the ops token, searches, opens the thread, sees the
redaction marked and the original beside the delivered copy. Skipped, with the reason,
where Debian's chromium or the ``playwright`` package is missing (no browser download:
``playwright install`` is never run).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from relay.api.server import serve_api
from tests.api.conftest import OPS_TOKEN
from tests.delivery_support import make_order
from tests.helpers import BUYER, SELLER, message, running_relay, send

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
PHONE = "+49 30 12345678"


def _playwright() -> Any:
    if not (os.path.exists(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"{CHROMIUM} not installed (apt-get install -y chromium)")
    try:
        from playwright.async_api import async_playwright
    except ImportError:
        pytest.skip("the playwright Python package is not installed")
    return async_playwright


async def _seed(relay: Any, sink: Any) -> Any:
    order = await make_order(relay)
    ask = message(BUYER, order.seller_alias, "Parcel <script>alert(1)</script>",
                  f"Hello, my parcel is late. Please call me on {PHONE} today.\n")  # fmt: skip
    code, text = await send(relay.port, BUYER, [order.seller_alias], ask.as_bytes())
    assert code == 250, text
    answer = message(SELLER, order.buyer_alias, "Re: Parcel", "It ships tomorrow.\n")
    code, text = await send(relay.port, SELLER, [order.buyer_alias], answer.as_bytes())
    assert code == 250, text
    html = message(SELLER, order.buyer_alias, "Re: Parcel (html)", "Thanks, Alice.\n")
    html.add_alternative(
        '<p>Thanks, <b>Alice</b>.</p><script>alert(7)</script><img src=x onerror="alert(8)">',
        subtype="html",
    )
    code, text = await send(relay.port, SELLER, [order.buyer_alias], html.as_bytes())
    assert code in (250, 550), text  # delivered or refused, the archive has it either way
    spam = message("stranger@elsewhere.example", order.seller_alias, "Cheap watches", "Buy.\n")
    code, text = await send(relay.port, "stranger@elsewhere.example", [order.seller_alias],
                            spam.as_bytes())  # fmt: skip
    assert code == 550, text
    await sink.wait_for(2)
    delivered = sink.messages[0].data
    assert PHONE.encode() not in delivered  # the real policy redacted it
    return order


async def test_message_center_in_chromium(make_settings, sink, tmp_path: Path) -> None:
    async_playwright = _playwright()
    settings = make_settings(
        delivery={"smarthost": f"127.0.0.1:{sink.port}"},
        api={"listen": "127.0.0.1:0", "ops_tokens": [OPS_TOKEN]},
    )
    async with running_relay(settings) as relay:
        order = await _seed(relay, sink)
        stop = asyncio.Event()
        port: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        server = asyncio.create_task(serve_api(settings, relay.engine, stop, port.set_result))
        try:
            base = f"http://127.0.0.1:{await asyncio.wait_for(port, 10)}"
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                try:
                    await _walk(browser, base, order.id, tmp_path)
                finally:
                    await browser.close()
        finally:
            stop.set()
            await asyncio.wait_for(server, 10)


SHOTS = ("thread.png", "record.png", "search-1280.png", "search-390.png", "thread-390.png")


def _keep(tmp_path: Path) -> None:
    """The screenshots the README shows (docs/screenshots/) are the ones this test takes:
    ``make screenshots`` runs it with RELAY_WEB_SCREENSHOTS=docs/screenshots. A plain test
    run leaves the tracked images alone (they would change on every run)."""
    keep = os.environ.get("RELAY_WEB_SCREENSHOTS")
    if not keep:
        return
    folder = Path(keep)
    folder.mkdir(parents=True, exist_ok=True)
    for name in SHOTS:
        if (tmp_path / name).exists():
            shutil.copy(tmp_path / name, folder / name)


async def _fits(page: Any) -> None:
    """Nothing makes the page itself scroll sideways; order ids and times stay on one line."""
    overflow = await page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    wide = await page.evaluate(
        "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
        " > document.documentElement.clientWidth + 1).slice(0, 5).map(e => e.tagName + '.' +"
        " e.className + ' ' + Math.round(e.getBoundingClientRect().right))"
    )
    assert overflow <= 1, f"page scrolls sideways by {overflow}px: {wide} at {page.url}"
    lines_of = (
        "e => { const r = document.createRange(); r.selectNodeContents(e); "
        "return new Set([...r.getClientRects()].map(x => Math.round(x.top))).size; }"
    )
    for cell in await page.locator(".nowrap").all():
        assert await cell.evaluate(lines_of) == 1, await cell.text_content()


async def _layouts(page: Any, tmp_path: Path) -> None:
    """The thread and the search at a desktop width (1280 px) and a phone's (390 px)."""
    thread_url = page.url
    for width, height in ((1280, 900), (390, 844)):
        await page.set_viewport_size({"width": width, "height": height})
        await page.goto(thread_url.split("/ui/")[0] + "/ui/?text=parcel")
        await page.wait_for_selector("table.results")
        await _fits(page)
        await page.screenshot(path=str(tmp_path / f"search-{width}.png"), full_page=True)
        await page.goto(thread_url)
        await page.wait_for_selector("article.message")
        await _fits(page)
        if width == 390:
            await page.screenshot(path=str(tmp_path / "thread-390.png"), full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


async def _walk(browser: Any, base: str, order_id: str, tmp_path: Path) -> None:
    page = await browser.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), asyncio.ensure_future(d.dismiss())))
    page.set_default_timeout(15_000)

    # Any page sends a stranger to the login form; a wrong token is refused.
    await page.goto(f"{base}/ui/")
    assert "/ui/login" in page.url
    await page.fill("input[name=token]", "not-the-token-at-all")
    await page.click("button[type=submit]")
    assert "not an ops token" in (await page.text_content("[role=alert]") or "")
    await page.fill("input[name=token]", OPS_TOKEN)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/ui/")
    cookies = await page.context.cookies()
    assert [c["httpOnly"] and c["sameSite"] == "Strict" for c in cookies] == [True]
    assert OPS_TOKEN not in cookies[0]["value"]

    # Full-text search finds the buyer's message; the hostile subject stays text.
    await page.fill("input[name=text]", "parcel late")
    await page.click("form.search button[type=submit]")
    await page.wait_for_selector("table.results")
    rows = page.locator("table.results tbody tr")
    assert await rows.count() == 1
    assert "<script>alert(1)</script>" in (await rows.first.text_content() or "")

    # The thread: oldest first, verdicts shown, the redaction marked.
    await rows.first.locator(f"a:text('{order_id}')").click()
    await page.wait_for_selector("article.message")
    verdicts = await page.locator("article.message .verdict").all_text_contents()
    assert verdicts[:2] == ["redact", "deliver"] and len(verdicts) == 4
    # The stranger's refused mail reads as a stranger's, not as the buyer's.
    stranger = page.locator("article.message.stranger")
    assert await stranger.count() == 1
    assert "stranger → seller" in (await stranger.locator(".who").text_content() or "")
    mark = page.locator("article.message mark.redaction").first
    assert await mark.text_content() == "[phone number removed]"
    assert await mark.is_visible()
    assert "phone_number" in (await page.locator("table.findings").first.text_content() or "")
    await page.screenshot(path=str(tmp_path / "thread.png"), full_page=True)
    await _layouts(page, tmp_path)

    # Original and delivered side by side.
    await page.locator("article.message h3 a").first.click()
    await page.wait_for_selector(".compare")
    sides = page.locator(".compare section.side")
    assert await sides.count() == 2
    left, right = await sides.nth(0).bounding_box(), await sides.nth(1).bounding_box()
    assert left and right and left["x"] < right["x"] and abs(left["y"] - right["y"]) < 5
    assert PHONE in (await sides.nth(0).locator("pre.body").first.text_content() or "")
    assert PHONE not in (await sides.nth(1).text_content() or "")
    red = sides.nth(1).locator("mark.redaction")
    assert await red.first.text_content() == "[phone number removed]"
    color = await red.first.evaluate("e => getComputedStyle(e).backgroundColor")
    assert color not in ("rgba(0, 0, 0, 0)", "transparent")  # the stylesheet loaded
    assert await sides.nth(1).locator("a.download").get_attribute("href")
    shot = tmp_path / "record.png"
    await page.screenshot(path=str(shot), full_page=True)
    _keep(tmp_path)

    # An HTML body: sanitised, in a sandboxed frame, and none of its script runs.
    await page.go_back()
    await page.locator("article.message h3 a").nth(2).click()
    frame_el = page.locator("iframe.html-part").first
    await frame_el.wait_for()
    assert await frame_el.get_attribute("sandbox") == ""
    frame = await (await frame_el.element_handle()).content_frame()
    assert frame is not None
    assert "Thanks, Alice." in (await frame.locator("body").text_content() or "")
    assert await frame.locator("script, img[onerror]").count() == 0

    # The report, then logging out closes every page again.
    await page.click("text=Response times")
    await page.wait_for_selector("table.report")
    assert SELLER in (await page.locator("table.report").text_content() or "")
    await page.click("text=Log out")
    await page.wait_for_url(f"{base}/ui/login")
    await page.goto(f"{base}/ui/records/1")
    assert "/ui/login" in page.url
    assert dialogs == []  # no archived script ever ran
