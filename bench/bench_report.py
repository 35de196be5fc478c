"""Ratios relay / (c) proxy from the summary.csv files of bench_relay.sh runs, and the
relay's own delivery count from its database (every accepted message delivered?).

    python bench/bench_report.py RESULTS_DIR
"""

from __future__ import annotations

import csv
import sqlite3
import sys
from pathlib import Path

GOALS = {"plain_1k": 0.5, "outlook_50k": 0.5, "html_50k": 0.2}  # issue 11, policy on


def rates(run: Path) -> dict[tuple[str, int], tuple[float, float, int]]:
    """(fixture, conc) -> (smtp-source msgs/s, loadgen msgs/s, errors), medians."""
    out = {}
    with (run / "summary.csv").open() as f:
        for row in csv.DictReader(f):
            key = (row["fixture"], int(row["conc"]))
            out[key] = (float(row["src_msgs_s"]), float(row["gen_msgs_s"]), int(row["errors"]))
    return out


def queue_state(db: Path) -> dict[str, int]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT status, count(*) FROM deliveries GROUP BY status").fetchall()
        verdicts = conn.execute("SELECT verdict, count(*) FROM archive GROUP BY verdict").fetchall()
    return {**{f"delivery {s}": n for s, n in rows}, **{f"archive {v}": n for v, n in verdicts}}


def main() -> None:
    results = Path(sys.argv[1])
    proxy = rates(results / "proxy")
    lines = [
        "| relay variant | fixture | c | relay src / gen msgs/s | (c) src / gen msgs/s "
        "| ratio src / gen | goal |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    variants = sorted(p.name for p in results.iterdir() if p.is_dir() and p.name != "proxy")
    for variant in variants:
        relay = rates(results / variant)
        for (fixture, conc), (src, gen, errs) in sorted(relay.items()):
            if (fixture, conc) not in proxy:
                continue
            psrc, pgen, perrs = proxy[(fixture, conc)]
            goal = GOALS.get(fixture)
            ok = ""
            if goal is not None and conc == 10:
                ok = f"{goal} {'met' if min(src / psrc, gen / pgen) >= goal else 'NOT met'}"
            warn = " (errors)" if errs or perrs else ""
            lines.append(
                f"| {variant.removeprefix('relay-')} | {fixture} | {conc} | {src:,.0f} / {gen:,.0f}"
                f" | {psrc:,.0f} / {pgen:,.0f} | {src / psrc:.2f} / {gen / pgen:.2f}{warn} | {ok} |"
            )
    lines.append("")
    for run in sorted(p for p in results.iterdir() if p.is_dir()):
        lines.append(f"{run.name}: {sink_line(results / f'{run.name}.out')}")
        db = results / f"{run.name}.sqlite3"
        if db.exists():
            state = ", ".join(f"{k}={v}" for k, v in queue_state(db).items())
            lines.append(f"  relay database: {state}")
    print("\n".join(lines))


def sink_line(out: Path) -> str:
    """The harness's own accepted-vs-delivered line (driver.py, with SINK_PORT)."""
    if not out.exists():
        return "(no output)"
    for line in reversed(out.read_text(errors="replace").splitlines()):
        if "delivered to sink" in line:
            return line.split("] ", 1)[-1]
    return "(no accepted/delivered line)"


if __name__ == "__main__":
    main()
