"""Resident set size of the kernel process.

Prefers the native library (reads /proc without allocating); falls back to
reading /proc/self/statm from Python so the panel works without it.
"""

from __future__ import annotations

import ctypes
import os

from . import native

_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    lib = native.library()
    if lib is not None:
        value = ctypes.c_uint64(0)
        if lib.cyscope_read_rss(ctypes.byref(value)) == 0:
            return int(value.value)
    return _rss_from_proc()


def _rss_from_proc() -> int:
    with open("/proc/self/statm", "rb") as f:
        return int(f.read().split()[1]) * _PAGE_SIZE
