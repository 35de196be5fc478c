"""The store owns the tables: read from the source (``ast``), so a new module that reaches
past relay.store fails here instead of in review (issue 11, "one owner per table").

* Only relay.store (and the migrations) import relay.store.tables, or any sqlalchemy
  ``Table`` a store module defines.
* Outside relay.store and relay.db nothing imports sqlalchemy at run time, but for the
  modules of ``SQLALCHEMY_ALLOWED`` (each with why; the list only shrinks). An import
  under ``if TYPE_CHECKING:`` of the engine/connection *types* is allowed: a handle
  passed through to the store, never a query.
* In relay.store, one writer per table: ``deliveries`` and ``delivery_events`` only in
  queue.py, ``archive`` rows only in ledger.py, and the chain lock taken only there.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
RELAY = ROOT / "relay"
OWNERS = ("relay/store/",)
SQL_OWNERS = ("relay/store/", "relay/db/")

# module -> why it still imports sqlalchemy at run time. Shrinks; never grows.
SQLALCHEMY_ALLOWED = {
    "relay/pipeline.py": "tells our own DB trouble (SQLAlchemyError) from a bad message"
    " (DataError); goes with relay.core.errors (H2) wrapping store errors",
    "relay/health.py": "readiness runs SELECT 1 itself; belongs in relay.store/db",
    "relay/cli/__init__.py": "make_url / a raw connection check for `relay db` commands",
    "relay/cli/startup.py": "names SQLAlchemyError to explain a failed start-up",
    "relay/web/app.py": "names DBAPIError to answer 503 while the database is away",
    "relay/api/errors.py": "names DBAPIError to answer 503 while the database is away",
    "relay/api/__init__.py": "AsyncEngine in a signature FastAPI reads at run time",
    "relay/api/server.py": "AsyncEngine in a signature FastAPI reads at run time",
}
# Handle types a module may import for annotations only (under TYPE_CHECKING).
HANDLE_TYPES = {"AsyncEngine", "AsyncConnection"}


def _modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(RELAY.rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        out.append((rel, ast.parse(path.read_text(encoding="utf-8"), rel)))
    return out


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the import nodes inside ``if TYPE_CHECKING:`` blocks."""
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", "")
            if name == "TYPE_CHECKING":
                for inner in node.body:
                    for sub in ast.walk(inner):
                        found.add(id(sub))
    return found


def _imports(tree: ast.Module) -> list[tuple[ast.stmt, str, list[str]]]:
    """(node, module, names) for every import, at any depth (late imports too)."""
    out: list[tuple[ast.stmt, str, list[str]]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                out.append((node, alias.name, []))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node, node.module, [a.name for a in node.names]))
    return out


def test_only_the_store_imports_the_table_definitions() -> None:
    offenders = []
    for rel, tree in _modules():
        if rel.startswith(OWNERS):
            continue
        for _node, module, names in _imports(tree):
            if module == "relay.store.tables" or (module == "relay.store" and "tables" in names):
                offenders.append(f"{rel}: imports relay.store.tables")
            elif module.startswith("relay.store.") and names:
                store_module = importlib.import_module(module)
                for name in names:
                    if isinstance(getattr(store_module, name, None), sa.Table):
                        offenders.append(f"{rel}: imports the table {module}.{name}")
    assert offenders == []


def test_no_sqlalchemy_outside_the_store_but_the_allow_list() -> None:
    found: dict[str, list[str]] = {}
    for rel, tree in _modules():
        if rel.startswith(SQL_OWNERS):
            continue
        typing_only = _type_checking_nodes(tree)
        for node, module, names in _imports(tree):
            if module.split(".")[0] != "sqlalchemy":
                continue
            if id(node) in typing_only and set(names) <= HANDLE_TYPES:
                continue
            found.setdefault(rel, []).append(module)
    unexpected = sorted(set(found) - set(SQLALCHEMY_ALLOWED))
    assert unexpected == [], f"new sqlalchemy imports outside relay.store: {unexpected}"
    stale = sorted(set(SQLALCHEMY_ALLOWED) - set(found))
    assert stale == [], f"no longer import sqlalchemy, take them off the list: {stale}"


def _store_sources() -> dict[str, str]:
    return {
        p.name: p.read_text(encoding="utf-8") for p in sorted((RELAY / "store").glob("*.py"))
    }


def test_one_writer_per_table_in_the_store() -> None:
    writers = {
        r"\bdeliveries\.(insert|update|delete)\(": {"queue.py"},
        r"\bdelivery_events\.(insert|update|delete)\(": {"queue.py"},
        r"\barchive(_table)?\.(insert|update|delete)\(": {"ledger.py"},
        r"pg_advisory_xact_lock": {"ledger.py"},
    }
    for pattern, owners in writers.items():
        found = {name for name, text in _store_sources().items() if re.search(pattern, text)}
        assert found == owners, pattern
    for rel, _tree in _modules():  # and nobody outside the store writes them either
        if not rel.startswith(OWNERS):
            text = (ROOT / rel).read_text(encoding="utf-8")
            assert not re.search(r"\b(deliveries|delivery_events|archive)\.(insert|update)", text)


def test_the_core_imports_nothing_of_ours() -> None:
    for rel, tree in _modules():
        if not rel.startswith("relay/core/"):
            continue
        for _node, module, _names in _imports(tree):
            assert not module.startswith("relay.") or module.startswith("relay.core"), (rel, module)
            assert module.split(".")[0] not in ("sqlalchemy", "aiosmtpd", "asyncio"), (rel, module)
