"""A small local journal of delivery outcomes the database could not take yet.

When a send has finished but its outcome cannot be written (the database is down), the
worker keeps the outcome in memory and retries. Memory alone would lose it on a clean
stop or a crash during the outage, and the row would then be sent again once its lease
ran out: a duplicate for a message the recipient already accepted. So each kept outcome
is also appended here and fsynced before the worker goes on, and a worker starting on the
same host replays the journals of workers that are gone before it claims anything.

One file per worker process (``<worker>.jsonl``), held under an exclusive ``flock`` for
the process's life: a starting worker adopts only files nobody holds. Lines are JSON
``{"op": "keep", ...}`` and ``{"op": "done", "id": N}``; the file is emptied once every
kept outcome is recorded. Nothing is written while the database is healthy.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import structlog

from relay.delivery.transport import Outcome
from relay.store.queue import Claimed

log = structlog.get_logger("relay.delivery")
SUFFIX = ".jsonl"


def encode(item: Claimed, outcome: Outcome, at: datetime) -> dict[str, Any]:
    data = asdict(item)
    data["created_at"] = item.created_at.isoformat()
    return {"op": "keep", "item": data, "outcome": asdict(outcome), "at": at.isoformat()}


def decode(entry: dict[str, Any]) -> tuple[Claimed, Outcome, datetime]:
    item = dict(entry["item"])
    item["created_at"] = datetime.fromisoformat(item["created_at"])
    return Claimed(**item), Outcome(**entry["outcome"]), datetime.fromisoformat(entry["at"])


def read_entries(fh: IO[str]) -> dict[int, dict[str, Any]]:
    """The kept outcomes not yet marked done, by delivery id (a torn last line from a
    crash mid-write is skipped: it was never fsynced, so its send was never acknowledged
    as kept)."""
    fh.seek(0)
    kept: dict[int, dict[str, Any]] = {}
    for line in fh:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("op") == "keep":
            kept[int(entry["item"]["id"])] = entry
        elif entry.get("op") == "done":
            kept.pop(int(entry["id"]), None)
    return kept


class OutcomeJournal:
    """The append-only file of one worker's kept outcomes (``directory`` None: off)."""

    def __init__(self, directory: Path | None, name: str) -> None:
        self.directory = directory
        self.name = name
        self._fh: IO[str] | None = None
        self._open: set[int] = set()
        self._made_dir = False

    @property
    def path(self) -> Path | None:
        return None if self.directory is None else self.directory / f"{self.name}{SUFFIX}"

    def _file(self) -> IO[str]:
        """Create and lock our file on first use. It is created under a temporary name
        and locked before it is renamed into view, so no starting worker can adopt it
        between creation and locking."""
        if self._fh is None:
            assert self.directory is not None and self.path is not None
            tmp = self.directory / f".{self.name}.tmp"
            for last in (False, True):  # another worker may remove an empty directory
                if not self.directory.is_dir():
                    self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                    self._made_dir = True
                try:
                    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
                    break
                except FileNotFoundError:
                    if last:
                        raise
            else:  # not reached: the last try breaks or raises (says so to the type checker)
                raise FileNotFoundError(tmp)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            os.rename(tmp, self.path)
            _fsync_dir(self.directory)
            self._fh = os.fdopen(fd, "a+", encoding="utf-8")
        return self._fh

    def _append(self, lines: list[dict[str, Any]]) -> None:
        fh = self._file()
        fh.write("".join(json.dumps(e, separators=(",", ":")) + "\n" for e in lines))
        fh.flush()
        os.fsync(fh.fileno())

    def keep(self, entries: list[dict[str, Any]]) -> None:
        """Append kept outcomes, durably (blocking: call it off the event loop)."""
        if self.directory is None or not entries:
            return
        self._append(entries)
        self._open.update(int(e["item"]["id"]) for e in entries)

    def done(self, ids: list[int]) -> None:
        """Mark outcomes recorded; empty the file when none is left open."""
        ids = [i for i in ids if i in self._open]
        if self.directory is None or not ids:
            return
        self._open.difference_update(ids)
        if self._open:
            self._append([{"op": "done", "id": i} for i in ids])
            return
        fh = self._file()
        fh.truncate(0)
        fh.flush()
        os.fsync(fh.fileno())

    def adopt(self) -> list[dict[str, Any]]:
        """Take over the kept outcomes of workers that are gone (their files are not
        locked): copied into our own journal first, then their files are removed."""
        if self.directory is None or not self.directory.is_dir():
            return []
        adopted: list[dict[str, Any]] = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            if path == self.path:
                continue
            try:
                fh = path.open("r+", encoding="utf-8")
            except OSError:
                continue
            with fh:
                try:
                    fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live worker's journal
                entries = list(read_entries(fh).values())
                self.keep(entries)
                path.unlink()
            if entries:
                log.info("delivery.journal_adopted", file=path.name, outcomes=len(entries))
            adopted.extend(entries)
        return adopted

    def close(self) -> None:
        """Release the file; an empty journal is removed (and the directory, if this
        worker made it and nothing else is in it), a non-empty one stays for the next
        worker to start on this host."""
        if self._fh is None:
            return
        with contextlib.suppress(OSError):
            if not self._open and self.path is not None:
                self.path.unlink()
                if self._made_dir and self.directory is not None:
                    self.directory.rmdir()  # only if we made it and it is empty
        self._fh.close()
        self._fh = None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
