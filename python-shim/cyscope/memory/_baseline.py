"""The heap in use before the tracker attached, so the live figure the
panel shows is the process's heap, not only the change since attach."""

from __future__ import annotations

import ctypes


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (n, ctypes.c_size_t)
        for n in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def heap_in_use() -> int:
    """glibc's own figure of heap bytes in use (0 where mallinfo2 is missing)."""
    try:
        libc = ctypes.CDLL(None)
        fn = libc.mallinfo2
        fn.restype = _MallInfo2
        mi = fn()
        return int(mi.uordblks + mi.hblkhd)
    except (AttributeError, OSError):
        return 0
