"""Every command the README documents works as documented.

The commands are read from README.md itself (the ``sh`` code blocks and the command
table), never copied here, so a README edit that breaks a command breaks this test.
"""

from __future__ import annotations

import email
import email.policy
import mailbox
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from relay.cli import main

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
RELAY = str(Path(sys.executable).with_name("relay"))
LONG_RUNNING = {"serve", "worker", "api", "api serve", "sink serve", "health"}


def section(title: str) -> str:
    """The text of a ``## title`` section (up to the next ``## `` heading)."""
    m = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert m, f"README has no section {title!r}"
    return m.group(1)


def sh_blocks(text: str) -> list[str]:
    return re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M)


def logical_lines(block: str) -> list[str]:
    """Shell lines with backslash continuations joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    return [ln.strip() for ln in joined.splitlines() if ln.strip() and not ln.startswith("#")]


def table_commands() -> list[str]:
    """Every `relay ...` code span in the first column of the command table."""
    spans = []
    for row in section("Commands").splitlines():
        if row.startswith("| `relay"):
            first = re.split(r"(?<!\\)\|", row)[1]
            spans += re.findall(r"`(relay [^`]+)`", first)
    return [s.replace("\\|", "|") for s in spans]


def expand(span: str) -> list[tuple[list[str], list[str]]]:
    """``relay order create|show [--json]`` -> ([order, create], [--json]), ([order, show], ...)."""
    tokens = span.split()[1:]
    path: list[list[str]] = []
    for tok in tokens:
        if tok.startswith(("-", "[")) or not re.fullmatch(r"[a-z][a-z|-]*", tok):
            break
        path.append(tok.split("|"))
    options = re.findall(r"(--[a-z][a-z-]*)", span)
    out: list[list[str]] = [[]]
    for alternatives in path:
        out = [[*p, a] for p in out for a in alternatives]
    return [(p, options) for p in out]


def readme_commands() -> list[tuple[list[str], list[str]]]:
    found = []
    for span in table_commands():
        found += expand(span)
    for block in sh_blocks(README):
        for line in logical_lines(block):
            m = re.match(r"(?:\.venv/bin/)?(relay .*)", line)
            if m:
                found += expand(m.group(1))
    return found


def help_of(path: list[str]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, f"relay {' '.join(path)} --help: {result.output}"
    return result.output


def command_at(path: list[str]) -> click.Command:
    cmd: click.Command = main
    ctx = click.Context(main)
    for name in path:
        assert isinstance(cmd, click.Group), f"relay {' '.join(path)}: {name} is no sub-command"
        sub = cmd.get_command(ctx, name)
        assert sub is not None, f"relay {' '.join(path)}: no command {name!r}"
        cmd = sub
    return cmd


def test_readme_lists_commands() -> None:
    """The extraction itself finds the documented commands (not a vacuous pass)."""
    paths = {" ".join(p) for p, _ in readme_commands()}
    assert {"serve", "order create", "archive search", "sink reply", "api"} <= paths


@pytest.mark.parametrize(
    ("path", "options"), readme_commands(), ids=lambda v: " ".join(v) if v else "-"
)
def test_documented_command_and_options_exist(path: list[str], options: list[str]) -> None:
    text = help_of(path)
    missing = [o for o in options if o not in text and not _option_of_sibling(path, o)]
    assert not missing, f"relay {' '.join(path)} has no {missing}"


def _option_of_sibling(path: list[str], option: str) -> bool:
    """``relay template list|show|send ... --var``: the option belongs to one alternative."""
    parent = command_at(path[:-1])
    assert isinstance(parent, click.Group)
    ctx = click.Context(parent)
    for name in parent.list_commands(ctx):
        sub = parent.get_command(ctx, name)
        if sub is not None and any(option in p.opts for p in sub.params):
            return True
    return False


def _quick_commands() -> list[list[str]]:
    """Documented commands that need no argument and return at once: run them for real."""
    out = []
    for path, _ in readme_commands():
        if " ".join(path) in LONG_RUNNING or not path:
            continue
        cmd = command_at(path)
        if isinstance(cmd, click.Group) or any(p.required for p in cmd.params):
            continue
        if path not in out:
            out.append(path)
    return out


def test_quick_documented_commands_run(tmp_path: Path) -> None:
    """Each runs against a fresh temporary database and exits 0."""
    config = tmp_path / "relay.toml"
    config.write_text(f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/relay.sqlite3"\n')
    env = {**os.environ, "RELAY_CONFIG": str(config)}
    paths = _quick_commands()
    assert ["db", "upgrade"] in paths and ["archive", "search"] in paths
    ordered = sorted(paths, key=lambda p: p != ["db", "upgrade"])  # create the schema first
    failures = []
    for path in ordered:
        run = subprocess.run(
            [RELAY, *path], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
        )
        if run.returncode != 0:
            failures.append(f"relay {' '.join(path)} -> {run.returncode}: {run.stderr[-300:]}")
        assert "Traceback" not in run.stderr, run.stderr
    assert not failures, "\n".join(failures)


# --- "Trying it", verbatim --------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _, err = proc.communicate()
            raise AssertionError(f"exited with {proc.returncode}: {err.decode()[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


def _make_run_commands() -> list[list[str]]:
    """What `make run` starts, read from the Makefile's run recipe."""
    recipe = re.search(r"^run:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe
    text = recipe.group(1).replace("\\\n", " ")
    commands = re.findall(r"\$\(VENV\)/bin/relay ([^&;\n]+)", text)
    return [c.split() for c in commands]


@pytest.fixture
def fresh_clone(tmp_path: Path) -> Iterator[tuple[Path, dict[str, str], dict[str, str]]]:
    """A scratch folder with the dev settings and .venv, as a fresh clone has them; the
    documented ports are swapped for free ones so parallel runs do not collide."""
    ports = {"127.0.0.1:2525": f"127.0.0.1:{_free_port()}",
             "127.0.0.1:2526": f"127.0.0.1:{_free_port()}"}  # fmt: skip
    (tmp_path / "deploy").mkdir()
    dev = (ROOT / "deploy" / "relay.dev.toml").read_text()
    for old, new in ports.items():
        dev = dev.replace(old, new)
    (tmp_path / "deploy" / "relay.dev.toml").write_text(dev)
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parents[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    yield tmp_path, ports, env


def test_trying_it_verbatim(fresh_clone: tuple[Path, dict[str, str], dict[str, str]]) -> None:
    if shutil.which("swaks") is None:
        pytest.skip("swaks is not installed (apt-get install swaks)")
    cwd, ports, env = fresh_clone
    procs = []
    try:
        for args in _make_run_commands():
            line = " ".join(args)
            for old, new in ports.items():
                line = line.replace(old, new)
            proc = subprocess.Popen(
                [RELAY, *line.split()], cwd=cwd, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            procs.append(proc)
        assert len(procs) == 2, "make run starts the sink and the relay"
        for port in ports.values():
            _wait_port(int(port.rsplit(":", 1)[1]), procs[-1])
        block = sh_blocks(section("Trying it"))[0]
        for old, new in ports.items():
            block = block.replace(old, new)
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", block], cwd=cwd, env=env,
            capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
        assert "Traceback" not in run.stderr
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            _, err = proc.communicate(timeout=30)
            assert b"delivery.failed" not in err
    _check_outcome(cwd, run.stdout)


def _check_outcome(cwd: Path, output: str) -> None:
    box = mailbox.Maildir(cwd / "var" / "sink", create=False)
    messages = [
        email.message_from_bytes(box.get_bytes(k), policy=email.policy.default)
        for k in sorted(box.keys())
    ]
    assert len(messages) == 2, output
    to_seller = next(m for m in messages if "support@shop.example" in str(m["To"]))
    to_buyer = next(m for m in messages if "alice@example.com" in str(m["To"]))
    # The seller sees Alice only as the buyer alias.
    assert b"alice@example.com" not in to_seller.as_bytes().split(b"\n\n", 1)[1]
    assert "alice@example.com" not in str(to_seller["From"]) + str(to_seller["Reply-To"])
    assert "@relay.example" in str(to_seller["From"])
    # Alice sees the seller only as the seller alias, and the reply threads in her client:
    # In-Reply-To is her own message's Message-ID (from the archived original).
    assert "support@shop.example" not in str(to_buyer["From"]) + str(to_buyer["Reply-To"])
    original = subprocess.run(
        [RELAY, "-c", "deploy/relay.dev.toml", "archive", "show", "1", "--original"],
        cwd=cwd, capture_output=True, timeout=60, check=True,
    ).stdout  # fmt: skip
    own_id = email.message_from_bytes(original)["Message-ID"]
    assert own_id and str(to_buyer["In-Reply-To"]) == own_id
    assert "Paket" in to_buyer.get_body(("plain",)).get_content()
    # Both records delivered; nothing refused or failed.
    rows = [ln for ln in output.splitlines() if "113-4829301-5520417" in ln and "deliver" in ln]
    assert len(rows) == 2 and all("delivered" in ln for ln in rows), output
