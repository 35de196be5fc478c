"""``relay archive search`` end to end, as an operator runs it: exec to exit, N times.

    .venv/bin/python bench/cli_bench.py                      # both kept 1M archives
    .venv/bin/python bench/cli_bench.py --url sqlite+aiosqlite:///var/bench/search.sqlite3
    .venv/bin/python bench/cli_bench.py --tree /tmp/relay-before   # another tree's relay/

Measures the kept archives of ``bench/search_bench.py`` (it never builds one: run that
first) with the installed ``relay`` command in a subprocess, start-up included and the
bytecode cached (as installed): median and p90 of the wall time, the median CPU time
(user + system, from the children's rusage) and the load average before each case, since
the 2-core host is shared and wall time includes waiting for a core. ``--tree DIR`` puts
DIR first on PYTHONPATH, to measure another revision (``git archive REV relay | tar -x
-C DIR``) against the same archive and load. Goal (issue 14): under 0.5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from search_bench import order_id, seller_email  # noqa: E402 - the bench's own data

KEPT = (
    "sqlite+aiosqlite:///var/bench/search.sqlite3",
    "postgresql+asyncpg://postgres@127.0.0.1:5432/relay_bench_search",
)
CASES = {
    "search --text --seller (largest seller)": [
        "archive", "search", "--text", "refund", "--seller", seller_email(0), "--limit", "50",
        "--json"],
    "search --text --seller (small seller)": [
        "archive", "search", "--text", "refund", "--seller", seller_email(7), "--limit", "50",
        "--json"],
    "search --text (word, 2 %)": ["archive", "search", "--text", "refund", "--limit", "50"],
    "search --order (one thread)": ["archive", "search", "--order", order_id(4242)],
    "relay --help": ["--help"],
}  # fmt: skip


def _marker(url: str) -> Path:
    return ROOT / "var" / "bench" / f"{url.rpartition('/')[2]}.bench.json"


def _load() -> float:
    return os.getloadavg()[0]


def run_case(relay: str, args: list[str], env: dict[str, str], n: int) -> dict[str, float]:
    subprocess.run([relay, *args], env=env, check=True, stdout=subprocess.DEVNULL)  # warm
    wall, cpu, loads = [], [], []
    for _ in range(n):
        loads.append(_load())
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([relay, *args], env=env, check=True, stdout=subprocess.DEVNULL)
        wall.append((time.perf_counter() - t0) * 1000)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000)
    wall.sort()
    return {
        "median": statistics.median(wall),
        "p90": wall[max(0, int(len(wall) * 0.9) - 1)],
        "cpu": statistics.median(cpu),
        "load_min": min(loads),
        "load_max": max(loads),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", action="append", help="a kept archive (default: both)")
    ap.add_argument("-n", type=int, default=20, help="calls per case")
    ap.add_argument("--tree", type=Path, help="a directory holding another relay/ package")
    ap.add_argument("--json", dest="as_json", action="store_true", help="print JSON")
    args = ap.parse_args()
    relay = str(Path(sys.executable).with_name("relay"))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
    if args.tree:
        env["PYTHONPATH"] = str(args.tree.resolve())
    results = []
    for url in args.url or KEPT:
        if not _marker(url).exists():
            print(f"skipped {url}: no kept archive (run bench/search_bench.py first)")
            continue
        config = Path(tempfile.mkdtemp()) / "cli-bench.toml"
        config.write_text(f'[database]\nurl = "{url}"\n')
        case_env = {**env, "RELAY_CONFIG": str(config)}
        engine = url.partition("+")[0]
        for name, argv in CASES.items():
            r = run_case(relay, argv, case_env, args.n)
            results.append({"engine": engine, "case": name, **r})
            print(f"{engine:10} {name:42} median {r['median']:6.0f} ms  p90 {r['p90']:6.0f} ms"
                  f"  CPU {r['cpu']:5.0f} ms  load {r['load_min']:.1f}-{r['load_max']:.1f}",
                  flush=True)  # fmt: skip
    if args.as_json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
