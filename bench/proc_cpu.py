"""CPU per message of each process of a running `relay serve`, read from /proc.

Run it beside `bench/run_relay_bench.sh` (one variant): it waits for the
bench's `relay --config .../relay-bench.toml serve`, starts counting when the relay's
database holds its first archive record (the
harness's smoke message, so the relay's start-up is not counted), samples every process
of the relay's tree (utime + stime) until the relay exits, and prints each process's CPU
and the total, per archived message. Idle time in the harness's drain wait is included.

    .venv/bin/python bench/proc_cpu.py bench/results/<run>/relay-policy-on.sqlite3 &
    VARIANTS=policy-on FIXTURES=plain_1k REPS=1 DURATION=3 RESULTS=bench/results/<run> \\
        bench/run_relay_bench.sh
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, utime + stime in seconds) of a live process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICK


def _cmd(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return "?"
    return " ".join(a.decode(errors="replace") for a in raw.split(b"\0") if a)


def _tree(root: int) -> dict[int, float]:
    """CPU of ``root`` and every descendant."""
    stats = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (s := _stat(int(entry))) is not None:
            stats[int(entry)] = s
    out: dict[int, float] = {}
    for pid, (_, cpu) in stats.items():
        p = pid
        while p > 1 and p != root:
            p = stats[p][0] if p in stats else 1
        if p == root:
            out[pid] = cpu
    return out


def _archived(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            return int(conn.execute("SELECT count(*) FROM archive").fetchone()[0])
    except sqlite3.Error:
        return 0


def main(db: Path) -> None:
    root = 0
    while not root:
        for entry in os.listdir("/proc"):
            c = _cmd(int(entry)) if entry.isdigit() else ""
            if "relay-bench.toml" in c and c.endswith(" serve"):
                root = int(entry)
        time.sleep(0.1)
    while _archived(db) == 0:
        time.sleep(0.05)
    first = _tree(root)
    names = {pid: _cmd(pid) for pid in first}
    last = dict(first)
    while _stat(root) is not None:
        now = _tree(root)
        for pid, cpu in now.items():
            names.setdefault(pid, _cmd(pid))
            last[pid] = max(cpu, last.get(pid, 0.0))
        time.sleep(0.2)
    n = _archived(db)
    total = 0.0
    print(f"archived {n} messages; load {os.getloadavg()}")
    for pid, cpu in sorted(last.items()):
        used = cpu - first.get(pid, 0.0)
        total += used
        print(f"{pid:>8} {1000 * used / max(n, 1):7.2f} ms/msg  {names[pid][-70:]}")
    print(f"   total {1000 * total / max(n, 1):7.2f} ms/msg")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
