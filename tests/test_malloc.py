"""Choosing the server's C allocator (revlens/malloc.py): when `revlens serve` re-executes itself
with jemalloc preloaded, and when it carries on as it is."""

from __future__ import annotations

import os

import pytest

from revlens import malloc

LIB = "libjemalloc.so.2"


def test_auto_preloads_jemalloc_once_and_keeps_other_preloads() -> None:
    env = malloc.exec_env("auto", {"PATH": "/usr/bin", "LD_PRELOAD": "libfoo.so"}, LIB)
    assert env is not None
    assert env["LD_PRELOAD"] == "libjemalloc.so.2 libfoo.so"
    assert env["MALLOC_CONF"] == malloc.JEMALLOC_CONF
    assert env["PATH"] == "/usr/bin"
    # The re-executed process sees the marker and does not re-execute again.
    assert malloc.exec_env("auto", env, LIB) is None


def test_operator_settings_win() -> None:
    env = malloc.exec_env("jemalloc", {"MALLOC_CONF": "narenas:1"}, LIB)
    assert env is not None and env["MALLOC_CONF"] == "narenas:1"
    assert malloc.exec_env("auto", {"LD_PRELOAD": "/opt/lib/libjemalloc.so"}, LIB) is None


def test_system_or_missing_library_carries_on() -> None:
    assert malloc.exec_env("system", {}, LIB) is None
    assert malloc.exec_env("auto", {}, None) is None


def test_jemalloc_asked_for_but_missing_is_an_error() -> None:
    with pytest.raises(malloc.AllocatorError, match="libjemalloc2"):
        malloc.exec_env("jemalloc", {}, None)
    with pytest.raises(malloc.AllocatorError, match="one of"):
        malloc.exec_env("tcmalloc", {}, LIB)


def test_this_process_reports_its_allocator() -> None:
    # pytest does not run with jemalloc preloaded unless someone asked for it.
    expected = "jemalloc" if "jemalloc" in os.environ.get("LD_PRELOAD", "") else "system"
    assert malloc.active() == expected
