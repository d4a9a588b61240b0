"""The C allocator under a long-running server.

`revlens serve` runs on jemalloc when the system has it (Debian: `apt install libjemalloc2`): the
server re-executes itself once, at start, with the library preloaded (`exec_env`). Request bodies
are allocated on the event-loop thread and freed on the loader thread; glibc's malloc keeps much of
that memory in the process as fragments and its `malloc_trim` stalls requests while it walks the
heap, where jemalloc hands unused pages back on its own background thread (bench/soak.py,
docs/benchmarks.md). DuckDB brings its own jemalloc for its memory; this is for the rest.

With the C library's allocator (`allocator = system`, or no jemalloc on the machine), two arenas and
a periodic `malloc_trim` keep glibc's heap in check (glibc only; elsewhere these do nothing).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, get_args

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2

# The `allocator` setting (revlens/settings.py).
Allocator = Literal["auto", "jemalloc", "system"]
CHOICES: tuple[str, ...] = get_args(Allocator)
# Set in the environment of the re-executed server, so it does not re-execute again.
ACTIVE_ENV = "REVLENS_ALLOCATOR_ACTIVE"
# jemalloc's settings unless the operator sets MALLOC_CONF: purge on a background thread, give unused
# dirty pages back after one second and skip the lazily-freed ("muzzy") stage.
JEMALLOC_CONF = "background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0"


class AllocatorError(Exception):
    """The allocator asked for cannot be used (the message says why)."""


def find_jemalloc() -> str | None:
    """The shared jemalloc library as the dynamic linker names it (libjemalloc.so.2), or None (also
    off Linux, where LD_PRELOAD does not apply)."""
    if not sys.platform.startswith("linux"):
        return None
    return ctypes.util.find_library("jemalloc")


def exec_env(choice: str, environ: Mapping[str, str], library: str | None) -> dict[str, str] | None:
    """The environment to re-execute the server with so that it runs on jemalloc, or None to carry on.

    `choice` is the `allocator` setting; `library` what `find_jemalloc` found. None when the
    process already runs on the allocator it should (or on the system's, by choice or because
    "auto" found no jemalloc); raises AllocatorError when "jemalloc" was asked for and is missing.
    """
    if choice not in CHOICES:
        raise AllocatorError(f"allocator must be one of {', '.join(CHOICES)}, not {choice!r}")
    if choice == "system" or environ.get(ACTIVE_ENV):
        return None
    if "jemalloc" in environ.get("LD_PRELOAD", ""):
        return None  # the operator preloaded it already
    if library is None:
        if choice == "jemalloc":
            raise AllocatorError(
                "allocator 'jemalloc' asked for but libjemalloc was not found (Debian: apt install libjemalloc2)"
            )
        return None
    env = dict(environ)
    env["LD_PRELOAD"] = " ".join(filter(None, (library, environ.get("LD_PRELOAD", ""))))
    env.setdefault("MALLOC_CONF", JEMALLOC_CONF)
    env[ACTIVE_ENV] = "jemalloc"
    return env


def reexec(env: dict[str, str]) -> None:
    """Replace this process with the same command line under `env` (same pid; does not return)."""
    os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], env)


def active() -> str:
    """The allocator this process runs on: "jemalloc" when it is loaded into it, else "system"."""
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return "system"
    return "jemalloc" if "libjemalloc" in maps else "system"


@functools.cache
def _glibc() -> Any:
    """glibc's C library, or None on other C libraries (musl, macOS) and when jemalloc replaces it."""
    if active() == "jemalloc":
        return None
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
    except OSError:
        return None
    return libc if libc is not None and hasattr(libc, "malloc_trim") else None


def limit_arenas(arenas: int = ARENAS) -> bool:
    """Cap the number of glibc malloc arenas (call before threads start allocating). True if applied."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_ARENA_MAX, arenas))


def trim() -> bool:
    """Give freed glibc heap memory back to the operating system. True if some was released."""
    libc = _glibc()
    if libc is None:
        return False
    return bool(libc.malloc_trim(0))
