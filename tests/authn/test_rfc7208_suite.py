"""The official RFC 7208 SPF test suite, run against our evaluator over loopback DNS.

``data/rfc7208-tests.yml`` is the openspf.org suite as shipped in the pyspf sdist (see
``data/README.md`` for version, URL and checksum; licence in ``data/rfc7208-tests.LICENSE``).
Every test of every scenario is one pytest case, id ``scenario::test``.

The zone data is served by the real loopback DNS server, following the conventions of the
suite's reference driver (pyspf ``test/testspf.py``):

- ``SPF`` records are served as type 99 and, unless the name has a ``TXT`` entry, also as
  TXT (our evaluator, like RFC 7208 §3.1 says, asks for TXT only);
- ``TXT: NONE`` / ``SPF: NONE`` mean "no such record";
- ``TIMEOUT`` makes every query of the name that is not answered by an entry listed before
  it go unanswered, so the resolver really times out;
- a list value is a record of several character strings (joined without spaces, §3.3).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from relay.authn.dnsutil import Deadline
from relay.authn.spf import check_identity
from tests.support.dnsserver import DNSServer

SUITE = Path(__file__).parent / "data" / "rfc7208-tests.yml"
_QTYPES = ("A", "AAAA", "MX", "PTR", "TXT", "SPF", "CNAME")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def _load() -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    cases = []
    with SUITE.open("rb") as fh:
        for scenario in yaml.safe_load_all(fh):
            for name, test in scenario["tests"].items():
                cases.append((f"{_slug(scenario['description'])}::{name}", scenario, test))
    return cases


CASES = _load()


def _serve(d: DNSServer, zonedata: dict[str, list[Any]]) -> None:
    """Load one scenario's zone into the loopback server (driver conventions above)."""
    for name, entries in zonedata.items():
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        answered: set[str] = set()
        for entry in entries:
            if entry == "TIMEOUT":
                for rtype in _QTYPES:
                    if rtype not in answered:
                        d.drop(name, rtype)
                continue
            ((rtype, value),) = entry.items()
            rtypes = [rtype, "TXT"] if rtype == "SPF" and not has_txt else [rtype]
            if value == "NONE":
                continue
            answered.update(rtypes)
            for rt in rtypes:
                _add(d, name, rt, value)


def _add(d: DNSServer, name: str, rtype: str, value: Any) -> None:
    if rtype in ("TXT", "SPF"):
        strings = [value] if isinstance(value, str) else list(value) or [""]
        d.add_strings(name, strings, rtype)
    elif rtype == "MX":
        pref, host = value
        d.add(name, "MX", f"{pref} {host.rstrip('.')}.")
    elif rtype in ("PTR", "CNAME"):
        d.add(name, rtype, f"{value.rstrip('.')}.")
    else:
        d.add(name, rtype, str(value))


@pytest.mark.parametrize(("scenario", "test"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_rfc7208(
    dns_server: DNSServer, scenario: dict[str, Any], test: dict[str, Any]
) -> None:
    _serve(dns_server, scenario["zonedata"])
    expected = test["result"]
    accepted = [expected] if isinstance(expected, str) else list(expected)
    result = await check_identity(
        str(test["host"]),
        test["mailfrom"] or "",
        test["helo"] or "",
        resolver=dns_server.resolver(timeout=0.25),
        deadline=Deadline.after(10),
    )
    assert result in accepted, f"{test.get('description', '')} (RFC 7208 {test['spec']})"


def test_suite_is_complete() -> None:
    """The vendored file is the whole suite: 16 scenarios, 203 tests."""
    assert len({c[0].split("::")[0] for c in CASES}) == 16
    assert len(CASES) == 203
