"""Message Center login: every page needs a session, the cookie is not the token, and
only our own pages may log in or out."""

from __future__ import annotations

import time

import httpx

from relay.web.session import COOKIE, LIFETIME, Sessions, safe_next
from tests.api.conftest import BOTH_TOKEN, MARKET_TOKEN, OPS_TOKEN
from tests.web.conftest import BASE, SAME_SITE, log_in


async def test_every_page_needs_a_session(client: httpx.AsyncClient) -> None:
    for path in ("/ui/", "/ui/?text=refund", "/ui/records/1", "/ui/records/1/original.eml",
                 "/ui/orders/113-4829301-5520417", "/ui/reports/response-times",
                 "/ui/no-such-page"):  # fmt: skip
        r = await client.get(path)
        assert r.status_code == 303, path
        assert r.headers["location"].startswith("/ui/login"), path
    r = await client.get("/ui/records/1")
    assert r.headers["location"] == "/ui/login?next=%2Fui%2Frecords%2F1"
    # A bearer token is for the JSON API; it opens no page.
    r = await client.get("/ui/", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert r.status_code == 303
    # The login form and its stylesheet are open.
    r = await client.get("/ui/login")
    assert r.status_code == 200 and 'type="password"' in r.text
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert (await client.get("/ui/static/web.css")).headers["content-type"].startswith("text/css")


async def test_login_sets_a_signed_strict_httponly_cookie(client: httpx.AsyncClient) -> None:
    r = await log_in(client)
    assert r.status_code == 303 and r.headers["location"] == "/ui/"
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/ui" in low
    assert "secure" not in low  # plain http here; https sets Secure
    assert OPS_TOKEN not in cookie
    r = await client.get("/ui/")
    assert r.status_code == 200 and "Log out" in r.text
    # Logging out (from our own page) drops the cookie.
    r = await client.post("/ui/logout", headers=SAME_SITE)
    assert r.status_code == 303
    assert (await client.get("/ui/")).status_code == 303


async def test_secure_cookie_over_tls(settings, engine) -> None:
    from relay.api import create_app

    transport = httpx.ASGITransport(app=create_app(settings, engine))
    async with httpx.AsyncClient(transport=transport, base_url="https://relay.test") as c:
        r = await log_in(c, Origin="https://relay.test")
    assert r.status_code == 303 and "secure" in r.headers["set-cookie"].lower()


async def test_wrong_tokens_and_cross_site_posts_are_refused(client: httpx.AsyncClient) -> None:
    for token in ("", "nope", MARKET_TOKEN, OPS_TOKEN + "x"):
        r = await log_in(client, token)
        assert r.status_code == 401 and "set-cookie" not in r.headers, token
        assert "not an ops token" in r.text
    assert (await log_in(client, BOTH_TOKEN)).status_code == 303  # ops among its scopes
    client.cookies.clear()
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                    {"Sec-Fetch-Site": "cross-site"}, {"Referer": "http://evil.example/x"},
                    {"Accept": "*/*"}):  # fmt: skip
        r = await log_in(client, **headers)
        assert r.status_code == 403 and "set-cookie" not in r.headers, headers
    assert (await log_in(client, **{"Sec-Fetch-Site": "same-origin"})).status_code == 303
    assert (await log_in(client, Referer=f"{BASE}/ui/login")).status_code == 303
    r = await client.post("/ui/logout", headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    assert (await client.get("/ui/")).status_code == 200  # still logged in


async def test_tampered_or_forged_sessions_are_refused(client: httpx.AsyncClient) -> None:
    await log_in(client)
    from itsdangerous.encoding import base64_decode, base64_encode, bytes_to_int, int_to_bytes

    value = client.cookies[COOKIE]
    nonce, stamp, sig = value.split(".")  # itsdangerous: value.timestamp.signature
    later = base64_encode(int_to_bytes(bytes_to_int(base64_decode(stamp)) + 3600)).decode()
    forged = [
        f"{nonce}.{later}.{sig}",  # longer life, old signature
        f"{nonce}.{stamp}.{'A' * len(sig)}",
        f"{'0' * len(nonce)}.{stamp}.{sig}",  # another nonce, old signature
        OPS_TOKEN,
        "",
    ]
    for bad in forged:
        client.cookies.clear()
        client.cookies.set(COOKIE, bad, domain="relay.test", path="/ui")
        assert (await client.get("/ui/")).status_code == 303, bad


def test_sessions_expire_and_die_with_their_token() -> None:
    sessions = Sessions([OPS_TOKEN, BOTH_TOKEN])
    now = time.time()
    value = sessions.issue(OPS_TOKEN, now)
    assert sessions.valid(value, now + 60)
    assert not sessions.valid(value, now + LIFETIME + 1)
    assert not Sessions([BOTH_TOKEN]).valid(value, now)  # token removed from settings
    assert not Sessions([]).token_ok("")


def test_next_stays_inside_the_message_center() -> None:
    assert safe_next("/ui/records/5") == "/ui/records/5"
    for bad in ("//evil.example/ui/", "https://evil.example/", "/v1/orders", "/ui\\..",
                "/ui/\r\nSet-Cookie: x", None, ""):  # fmt: skip
        assert safe_next(bad) == "/ui/", bad


async def test_login_returns_to_the_page_asked_for(client: httpx.AsyncClient) -> None:
    r = await client.post("/ui/login", data={"token": OPS_TOKEN, "next": "/ui/records/7"},
                          headers=SAME_SITE)  # fmt: skip
    assert r.headers["location"] == "/ui/records/7"
    client.cookies.clear()
    r = await client.post("/ui/login", data={"token": OPS_TOKEN, "next": "//evil.example/"},
                          headers=SAME_SITE)  # fmt: skip
    assert r.headers["location"] == "/ui/"
