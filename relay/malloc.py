"""glibc's allocator told to give memory back after a large message.

A multi-megabyte message passes through a few large buffers (the DATA buffer, the parsed
parts, a decoded image in a policy worker). glibc serves an allocation above
``M_MMAP_THRESHOLD`` with its own mapping, returned to the system on free, but it raises
that threshold to the size of every such block freed (up to 32 MB): after the first large
message, the next ones land in the heap, and a heap only shrinks from its top. Every
thread also gets an arena of its own (up to 8 per core), each keeping its freed memory.
The relay then sits at the peak of its worst burst for good.

So, once per process (``tune``): a fixed mmap threshold (large blocks always mapped and
unmapped), few arenas; and after a large message (``trim``) ``malloc_trim(0)``, which
hands back the free pages inside every arena, not just at the heap's top. Without glibc
(musl, macOS) both are no-ops.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8
MMAP_THRESHOLD = 1 << 20  # blocks of 1 MB and more: mapped, unmapped on free
TRIM_AFTER = 1 << 20  # a message this large is followed by a trim


def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if not name:
        return None
    try:
        lib = ctypes.CDLL(name)
        lib.malloc_trim  # noqa: B018 - glibc only
        lib.mallopt  # noqa: B018
    except (OSError, AttributeError):
        return None
    return lib


_LIBC = _libc()


def tune(arenas: int = 2) -> None:
    """Fixed thresholds and at most ``arenas`` malloc arenas; call early in a process."""
    if _LIBC is None:
        return
    _LIBC.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)
    _LIBC.mallopt(_M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD)
    _LIBC.mallopt(_M_ARENA_MAX, arenas)


def trim() -> None:
    """Return free heap pages of every arena to the system (a few ms on a large heap)."""
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def rss() -> int:
    """This process's resident memory in bytes (/proc; 0 where there is none)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0
