"""The C allocator under a long-running server (glibc only; elsewhere these do nothing).

Request bodies are allocated on the event-loop thread and freed on the loader thread, and DuckDB's
checkpoints briefly take memory up to the store's limit. With glibc's defaults each thread gets its
own arena and freed memory mostly stays in the process, so RSS creeps up under a steady load even
though nothing leaks (bench/soak.py). Two arenas and a periodic `malloc_trim` keep it flat.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
from typing import Any

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2


@functools.cache
def _glibc() -> Any:
    """glibc's C library, or None on other C libraries (musl, macOS)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap the number of malloc arenas (call before threads start allocating). True if applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give freed heap memory back to the operating system. True if some was released."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
