"""One exception tree (relay.core.errors), and faces that answer by type, never by text.

The API once chose 404 or 409 by looking for "no such order" or "already decided" in an
error's message: rewording a message changed a status. These tests pin the tree (every
exception class under relay/ derives from RelayError and is defined in core/errors.py)
and drive the real app and the real CLI with errors whose words would mislead a text
matcher.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import click
import httpx
import pytest
from click.testing import CliRunner

import relay
from relay.core import errors
from relay.core.errors import RelayError
from tests.api.conftest import MARKET_TOKEN, OPS_TOKEN, engine, order, settings  # noqa: F401
from tests.helpers import BUYER, DOMAIN, ORDER, SELLER

RELAY = Path(relay.__file__).parent
# A BaseException on purpose: the CPU alarm inside a policy worker must get past every
# `except Exception` of the parsers (relay.core.errors says so).
# The CLI's quick search signals "let the store's path answer" with Fallback: control flow
# that never leaves the CLI's quick search, so no face ever answers it.
OUTSIDE = {("relay.policy_pool", "_CpuOver"), ("relay.cli.quick_sql", "Fallback")}
# Groups that `except` may name but no module raises; ApiError carries its own status.
FAMILIES = {errors.RelayError, errors.CallerError, errors.OrderError, errors.HoldError,
            errors.ReportError, errors.TemplateError}  # fmt: skip


def _exception_classes() -> dict[tuple[str, str], type[BaseException]]:
    found: dict[tuple[str, str], type[BaseException]] = {}
    for info in pkgutil.walk_packages(relay.__path__, "relay."):
        if info.name.endswith("__main__"):
            continue  # runs the CLI
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if inspect.isclass(obj) and issubclass(obj, BaseException):
                if obj.__module__.startswith("relay."):
                    found[(obj.__module__, obj.__qualname__)] = obj
    return found


def test_every_exception_class_under_relay_derives_from_relay_error() -> None:
    found = _exception_classes()
    assert len(found) >= 30  # the walk reached the whole package
    strays = {key for key, cls in found.items()
              if not issubclass(cls, RelayError | click.ClickException)}  # fmt: skip
    assert strays == OUTSIDE
    # relay.cli's ClickException subclasses are how click prints and exits, not errors:
    # they are made from ours (relay.cli.as_click) and never raised anywhere else.
    shown = {key for key, cls in found.items() if issubclass(cls, click.ClickException)}
    assert {module for module, _ in shown} == {"relay.cli"}


def test_exception_classes_are_defined_in_core_errors_only() -> None:
    """By source, so a module that fails to import cannot hide a class: a class whose
    bases name an exception lives in relay/core/errors.py (the API's ApiError, which
    carries its own status, and the one outsider excepted)."""
    allowed = {("api/errors.py", "ApiError"), ("policy_pool.py", "_CpuOver"),
               ("cli/quick_sql.py", "Fallback")}  # fmt: skip
    elsewhere = set()
    for path in RELAY.rglob("*.py"):
        rel = path.relative_to(RELAY).as_posix()
        if rel == "core/errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                names = [ast.unparse(b) for b in node.bases]
                ours = [n for n in names if n != "click.ClickException"]
                if any(n.endswith(("Error", "Exception", "Exceeded")) for n in ours):
                    elsewhere.add((rel, node.name))
    assert elsewhere <= allowed, elsewhere - allowed


def test_each_error_is_in_exactly_one_category() -> None:
    from relay.api.errors import ApiError

    for cls in vars(errors).values():
        if not (inspect.isclass(cls) and issubclass(cls, RelayError)):
            continue
        if cls in FAMILIES or cls in errors.CATEGORIES:
            continue
        kinds = [c for c in errors.CATEGORIES if issubclass(cls, c)]
        assert len(kinds) == 1, (cls.__name__, kinds)
        assert cls.__doc__, cls.__name__
        assert cls.__name__ in (errors.__doc__ or ""), f"{cls.__name__} is not documented"
    assert issubclass(ApiError, RelayError)


def test_core_errors_imports_nothing_of_ours_outside_core() -> None:
    tree = ast.parse((RELAY / "core" / "errors.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            assert not node.module.startswith("relay.") or node.module.startswith("relay.core")


def test_old_names_still_import_from_where_they_were() -> None:
    from relay.authn.dnsutil import DnsTempError
    from relay.authn.fromaddr import FromError
    from relay.authn.spf import PermError
    from relay.cli import StartupError
    from relay.delivery.route import RouteError
    from relay.dkim import DkimKeyError
    from relay.mail.limits import LimitExceeded as StructureLimit
    from relay.policy import PolicyError
    from relay.policy.mime import Refused
    from relay.policy_pool import BudgetExceeded
    from relay.ratelimits import LimitExceeded as RateLimit
    from relay.settings import SettingsError
    from relay.store.search import QueryError

    assert (StructureLimit, RateLimit) == (errors.MessageLimitExceeded, errors.RateLimitExceeded)
    assert (PermError, Refused) == (errors.SpfPermError, errors.ContentRefused)
    for cls in (DnsTempError, FromError, StartupError, RouteError, DkimKeyError, PolicyError,
                BudgetExceeded, SettingsError, QueryError):  # fmt: skip
        assert getattr(errors, cls.__name__) is cls
    assert issubclass(PolicyError, ValueError) and issubclass(errors.HoldError, LookupError)


def test_refusals_survive_the_policy_pool_boundary() -> None:
    """BudgetExceeded is raised in a worker process and read in ours (pickled)."""
    import pickle

    from relay.core import replies

    over = errors.RateLimitExceeded("per_party_day", replies.TEMP_FAILURE)
    back = pickle.loads(pickle.dumps(over))
    assert (back.limit, back.reply, str(back)) == ("per_party_day", replies.TEMP_FAILURE,
                                                   "per_party_day")  # fmt: skip
    budget = pickle.loads(pickle.dumps(errors.BudgetExceeded(replies.CPU_BUDGET)))
    assert budget.reply == replies.CPU_BUDGET and str(budget) == replies.CPU_BUDGET.text


# -- the API: status by type ---------------------------------------------------------------
# Each error's words say the opposite of its type: a text matcher would answer wrongly.
MISLEADING = [
    (errors.OrderInvalid("no such order: 1 already exists"), 422, "invalid"),
    (errors.OrderNotFound("order 1 already exists (invalid)"), 404, "not_found"),
    (errors.HoldDecided("no held message 7"), 409, "conflict"),
    (errors.HoldNotFound("held message 7 was already decided"), 404, "not_found"),
    (errors.ReportNotFound("days must be one of 7, 30, 90"), 404, "not_found"),
    (errors.TemplateConflict("unknown template 'x'"), 409, "conflict"),
    (errors.ChoiceError("is not valid"), 404, "not_found"),
    (errors.QueryError("no such order"), 422, "invalid"),
    (errors.DnsTempError("no such party"), 503, "unavailable"),
    (errors.SettingsError("no such order: 1"), 500, "internal"),
    (errors.RouteError("no such order", permanent=True, enhanced="5.1.2"), 500, "internal"),
]


@pytest.fixture
async def raising_client(settings: Any, engine: Any) -> AsyncIterator[Any]:  # noqa: F811
    """The real app (token gate, catch-all, exception handlers) with one extra route that
    raises the error the test puts in ``raise_next``."""
    from relay.api import create_app
    from relay.api.errors import require

    app = create_app(settings, engine)
    box: dict[str, BaseException] = {}

    async def boom() -> None:
        raise box["error"]

    app.add_api_route("/v1/test/raise", boom, methods=["POST"], dependencies=[require("ops")])
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as client:
        yield client, box


@pytest.mark.parametrize(("error", "status", "code"), MISLEADING,
                         ids=[type(e).__name__ for e, _, _ in MISLEADING])  # fmt: skip
async def test_api_status_comes_from_the_type(raising_client, error, status, code) -> None:
    client, box = raising_client
    box["error"] = error
    r = await client.post("/v1/test/raise", headers={"Authorization": f"Bearer {OPS_TOKEN}"})
    assert r.status_code == status, r.text
    body = r.json()["error"]
    assert (body["status"], body["code"]) == (status, code)
    if status >= 500:  # nothing internal reaches the client
        assert str(error) not in r.text


async def test_api_routes_answer_store_errors_by_type(raising_client, order) -> None:  # noqa: F811
    client, _ = raising_client
    auth = {"Authorization": f"Bearer {MARKET_TOKEN}"}
    again = {"order_id": ORDER, "buyer": BUYER, "seller": SELLER, "buyer_locale": "de-DE"}
    r = await client.post("/v1/orders", json=again, headers=auth)
    assert (r.status_code, r.json()["error"]["field"]) == (409, "order_id"), r.text
    same = {**again, "order_id": "113-0000000-0000077", "seller": BUYER}
    r = await client.post("/v1/orders", json=same, headers=auth)
    assert (r.status_code, r.json()["error"]["field"]) == (409, "seller"), r.text
    r = await client.get("/v1/orders/999-9999999-9999999", headers=auth)
    assert (r.status_code, r.json()["error"]["field"]) == (404, None), r.text
    r = await client.delete(f"/v1/parties/{BUYER}/senders/other@buyer.example", headers=auth)
    assert (r.status_code, r.json()["error"]["field"]) == (404, None), r.text
    r = await client.delete(f"/v1/parties/{BUYER}/senders/not-an-address", headers=auth)
    assert (r.status_code, r.json()["error"]["field"]) == (422, "sender"), r.text
    ops = {"Authorization": f"Bearer {OPS_TOKEN}"}
    r = await client.post("/v1/holds/424242/release", headers=ops)
    assert r.status_code == 404, r.text
    r = await client.get("/v1/parties/nobody@nowhere.example/limits", headers=ops)
    assert r.status_code == 404, r.text


# -- the CLI: exit status by type ----------------------------------------------------------
def test_cli_exit_status_comes_from_the_type() -> None:
    from relay.cli import as_click

    cases = [
        (errors.OrderNotFound("setting 'x' is broken"), 1),
        (errors.HoldDecided("no held message 1"), 1),
        (errors.SettingsError("no such order"), 2),
        (errors.StartupError("no such order"), 2),
        (errors.DkimKeyError("not found"), 2),
        (errors.DnsTempError("setting 'dns'"), 75),
    ]
    for error, status in cases:
        failure = as_click(error)
        assert failure is not None and failure.exit_code == status, error
        assert failure.message == str(error)
    assert as_click(errors.RouteError("x", permanent=True, enhanced="5.0.0")) is None


def test_cli_answers_relay_errors_in_one_line(tmp_path: Path) -> None:
    from relay.cli import main

    env = {"RELAY_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/relay.sqlite3",
           "RELAY_RELAY__DOMAIN": DOMAIN, "RELAY_AUTH__MODE": "off"}  # fmt: skip
    runner = CliRunner()
    assert runner.invoke(main, ["db", "upgrade"], env=env).exit_code == 0
    missing = runner.invoke(main, ["hold", "release", "4242"], env=env)
    assert missing.exit_code == 1 and "Traceback" not in missing.output, missing.output
    assert "4242" in missing.output
    bad = runner.invoke(main, ["-c", str(tmp_path / "absent.toml"), "order", "list"], env=env)
    assert bad.exit_code == 2 and "Traceback" not in bad.output, bad.output
