"""ctypes bindings of the allocation tracker in libcyscope.so (cyscope.h).

Declared here rather than in cyscope.native so the memory package owns its
part of the ABI; the library itself is located and version-checked by
cyscope.native.
"""

from __future__ import annotations

import ctypes
import logging
import sys
from array import array
from collections.abc import Callable

from .. import native

log = logging.getLogger("cyscope.memory")

FRAME_NATIVE = 0
FRAME_PYTHON = 1

OK = 0
ENOMEM = -4


class MemConfig(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("exact", ctypes.c_int),
        ("native", ctypes.c_int),
        ("sample_bytes", ctypes.c_uint64),
        ("record_threshold", ctypes.c_uint64),
        ("stack_arena_limit", ctypes.c_uint64),
    ]


class MemTotals(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("current_bytes", ctypes.c_int64),
        ("peak_bytes", ctypes.c_int64),
        ("allocated_bytes", ctypes.c_uint64),
        ("allocations", ctypes.c_uint64),
        ("freed_bytes", ctypes.c_uint64),
        ("frees", ctypes.c_uint64),
        ("live_records", ctypes.c_uint64),
        ("stacks", ctypes.c_uint64),
        ("tracker_bytes", ctypes.c_uint64),
        ("patched_slots", ctypes.c_uint64),
        ("epoch", ctypes.c_uint32),
        ("attached", ctypes.c_int32),
        ("stacks_refused", ctypes.c_uint64),
    ]


class MemFrame(ctypes.Structure):
    _fields_ = [("id", ctypes.c_uint64), ("line", ctypes.c_int32), ("kind", ctypes.c_int32)]


class FrameNote(ctypes.Structure):
    # cyscope_mem_frame_note: what a raw frame shows as (see shown_keys).
    _fields_ = [
        ("frame", MemFrame),
        ("number", ctypes.c_uint32),
        ("flags", ctypes.c_uint32),
        ("lib", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
    ]


# FrameNote.flags (CYSCOPE_NOTE_*) and shown_keys options (CYSCOPE_KEYS_*).
NOTE_HIDDEN = 1
NOTE_EVAL_LOOP = 2
NOTE_CELL_CODE = 4
NOTE_IN_CELL = 8
NOTE_HOST = 16
NOTE_IMPORT = 32
NOTE_LIBRARY = 64
KEYS_COLLAPSE = 1
KEYS_TRIM = 2
KEYS_NATIVE = 4
KEYS_INVERTED = 8


class StackStat(ctypes.Structure):
    _fields_ = [
        ("stack_id", ctypes.c_uint32),
        ("epoch", ctypes.c_uint32),
        ("bytes", ctypes.c_double),
        ("count", ctypes.c_double),
        ("exact_bytes", ctypes.c_uint64),
        ("records", ctypes.c_uint64),
    ]


class PyLayout(ctypes.Structure):
    # cyscope_py_layout (cyscope.h); filled by _frames.layout_for_this_python().
    _fields_ = [("size", ctypes.c_size_t)] + [
        (name, ctypes.c_int32)
        for name in (
            "ts_cframe",
            "cframe_current_frame",
            "frame_code",
            "frame_previous",
            "frame_prev_instr",
            "frame_owner",
            "owner_generator",
            "code_filename",
            "code_name",
            "code_firstlineno",
            "code_firsttraceable",
            "code_adaptive",
            "unicode_state",
            "unicode_ascii_data",
            "unicode_utf8",
            "ts_frame",
            "owner_cstack",
            "object_type",
            "unicode_length",
        )
    ]


class PyMallocLayout(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("pool_bits", ctypes.c_int32),
        ("szidx_offset", ctypes.c_int32),
        ("align_shift", ctypes.c_int32),
        ("small_max", ctypes.c_int32),
    ]


# pymalloc's pools on 64-bit CPython 3.11 to 3.13 (Objects/obmalloc.c,
# Include/internal/pycore_obmalloc.h): 16 KiB pools, size classes of 16 bytes
# up to 512, and pool_header.szidx after four pointers and arenaindex.
_PYMALLOC = dict(pool_bits=14, szidx_offset=36, align_shift=4, small_max=512)


def pymalloc_layout() -> tuple[PyMallocLayout | None, str | None]:
    """pymalloc's layout in this interpreter, checked on real blocks, or why not.

    Python objects are counted one by one only over pymalloc: under another
    allocator (PYTHONMALLOC=malloc, debug hooks, a tracer installed first)
    objects are counted where that allocator takes its memory.
    """
    if sys.maxsize < 2**32:
        return None, "a 32-bit interpreter"
    if hasattr(sys, "_is_gil_enabled") and not sys._is_gil_enabled():
        return None, "a free-threaded interpreter (no pymalloc)"
    try:
        name_of = ctypes.pythonapi._PyMem_GetCurrentAllocatorName
    except AttributeError:
        return None, "this interpreter does not name its allocator"
    name_of.restype = ctypes.c_char_p
    name = name_of()
    if name != b"pymalloc":
        return None, f"the Python allocator is {name.decode() if name else 'not the default (a tracer?)'}"
    layout = PyMallocLayout(size=ctypes.sizeof(PyMallocLayout), **_PYMALLOC)
    # Blocks of these sizes come from pools: their pool header must name
    # their size class, or the layout is not this interpreter's.
    alloc, free = ctypes.pythonapi.PyObject_Malloc, ctypes.pythonapi.PyObject_Free
    alloc.restype, alloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    free.restype, free.argtypes = None, [ctypes.c_void_p]
    mask = ~((1 << layout.pool_bits) - 1)
    for n in (8, 24, 100, layout.small_max):
        p = alloc(n)
        if not p:
            return None, "out of memory"
        try:
            szidx = ctypes.c_uint32.from_address((p & mask) + layout.szidx_offset).value
        finally:
            free(p)
        align = 1 << layout.align_shift
        if (szidx + 1) * align != (n + align - 1) // align * align:
            return None, "pymalloc's pool layout is not the one cyscope knows"
    return layout, None


_P = ctypes.POINTER
_DECLS = {
    "cyscope_mem_attach": [_P(MemConfig)],
    "cyscope_mem_detach": [],
    "cyscope_mem_configure": [_P(MemConfig)],
    "cyscope_mem_get_config": [_P(MemConfig)],
    "cyscope_mem_totals_get": [_P(MemTotals)],
    "cyscope_mem_reset_peak": [_P(ctypes.c_int64)],
    "cyscope_mem_next_epoch": [_P(ctypes.c_uint32)],
    "cyscope_mem_thread_pause": [ctypes.c_int],
    "cyscope_mem_scan_patched": [_P(ctypes.c_uint64)],
    "cyscope_mem_set_python_layout": [_P(PyLayout)],
    "cyscope_mem_live_by_stack": [
        ctypes.c_uint32,
        ctypes.c_uint32,
        _P(StackStat),
        ctypes.c_size_t,
        _P(ctypes.c_size_t),
    ],
    "cyscope_mem_peak_by_stack": [_P(StackStat), ctypes.c_size_t, _P(ctypes.c_size_t), _P(ctypes.c_int64)],
    "cyscope_mem_stack_totals": [_P(StackStat), ctypes.c_size_t, _P(ctypes.c_size_t)],
    "cyscope_mem_stack_changes": [
        ctypes.c_uint32,
        ctypes.c_uint32,
        _P(StackStat),
        ctypes.c_size_t,
        _P(ctypes.c_size_t),
    ],
    "cyscope_mem_stack_log_trim": [ctypes.c_uint32],
    "cyscope_mem_exclude_threads": [_P(ctypes.c_int64), ctypes.c_size_t],
    "cyscope_mem_stack_frames": [ctypes.c_uint32, _P(MemFrame), ctypes.c_size_t, _P(ctypes.c_size_t)],
    "cyscope_mem_code_info": [
        ctypes.c_uint64,
        _P(ctypes.c_char_p),
        _P(ctypes.c_char_p),
        _P(ctypes.c_int32),
    ],
}

# Newer entry points: a library without them still tracks (callers fall back).
_OPTIONAL_DECLS = {
    "cyscope_mem_note_frames": [_P(FrameNote), ctypes.c_size_t],
    "cyscope_mem_forget_frame_notes": [],
    "cyscope_mem_shown_keys": [
        _P(ctypes.c_uint32),
        ctypes.c_size_t,
        ctypes.c_uint32,
        _P(ctypes.c_uint8),
        ctypes.c_size_t,
        _P(ctypes.c_uint32),
        _P(ctypes.c_uint8),
        _P(MemFrame),
        ctypes.c_size_t,
        _P(ctypes.c_size_t),
        _P(ctypes.c_size_t),
    ],
    "cyscope_flame_tree": [
        ctypes.c_char_p,
        ctypes.c_size_t,
        _P(ctypes.c_uint32),
        _P(ctypes.c_uint32),
        _P(ctypes.c_uint32),
        ctypes.c_size_t,
        _P(ctypes.c_double),
        _P(ctypes.c_double),
        _P(ctypes.c_double),
        _P(ctypes.c_double),
        ctypes.c_double,
        ctypes.c_size_t,
        ctypes.c_size_t,
        _P(ctypes.c_int32),
        _P(ctypes.c_int32),
        _P(ctypes.c_int64),
        _P(ctypes.c_int64),
        _P(ctypes.c_int64),
        _P(ctypes.c_int64),
        _P(ctypes.c_size_t),
    ],
    "cyscope_keys_group": [
        ctypes.c_char_p,
        ctypes.c_size_t,
        _P(ctypes.c_uint32),
        _P(ctypes.c_uint32),
        ctypes.c_size_t,
        _P(ctypes.c_double),
        ctypes.c_size_t,
        _P(ctypes.c_uint32),
        _P(ctypes.c_uint32),
        _P(ctypes.c_uint32),
        _P(ctypes.c_double),
        _P(ctypes.c_size_t),
    ],
}

# Called with the GIL held (ctypes.PyDLL): they swap the interpreter's allocators.
_GIL_DECLS = {
    "cyscope_mem_python_objects": [_P(PyMallocLayout)],
}

_lib: ctypes.CDLL | None = None
_gil_lib: ctypes.PyDLL | None = None
_bare: ctypes.CDLL | None = None
_reason: str | None = None


def lib() -> ctypes.CDLL | None:
    """The library with the memory functions declared, or None (see reason())."""
    global _lib, _reason
    if _lib is not None or _reason is not None:
        return _lib
    loaded = native.library()
    if loaded is None:
        _reason = native.status().error or "native library unavailable"
        return None
    # A separate handle: ctypes caches function objects per CDLL, and the
    # argtypes below must not leak into other users of native.library().
    try:
        handle = ctypes.CDLL(native.status().path)
        gil_handle = ctypes.PyDLL(native.status().path)
        for lib_handle, decls in ((handle, _DECLS), (gil_handle, _GIL_DECLS)):
            for name, argtypes in decls.items():
                fn = getattr(lib_handle, name)
                fn.argtypes = argtypes
                fn.restype = ctypes.c_int
        for name, argtypes in _OPTIONAL_DECLS.items():
            fn = getattr(handle, name, None)
            if fn is not None:
                fn.argtypes = argtypes
                fn.restype = ctypes.c_int
    except (OSError, AttributeError) as exc:
        _reason = f"libcyscope.so has no allocation tracker ({exc}): rebuild with `npm run build`"
        return None
    global _gil_lib, _bare
    _gil_lib = gil_handle
    # Without argtypes a byref() argument passes as it is: the call itself
    # allocates no Python object (a declared pointer argument would be
    # converted into a new one), so a region can read its figures without
    # counting its own reading.
    _bare = ctypes.CDLL(native.status().path)
    for name in ("cyscope_mem_totals_get", "cyscope_mem_region_totals_get", "cyscope_mem_next_epoch"):
        getattr(_bare, name).restype = ctypes.c_int
    _lib = handle
    return _lib


def gil_lib() -> ctypes.PyDLL | None:
    """The entry points that must run with the GIL held (see _GIL_DECLS)."""
    lib()
    return _gil_lib


def reason() -> str | None:
    lib()
    return _reason


def config_struct(exact: bool, native_stacks: bool, sample_bytes: int = 0, record_threshold: int = 0) -> MemConfig:
    return MemConfig(
        size=ctypes.sizeof(MemConfig),
        exact=int(bool(exact)),
        native=int(bool(native_stacks)),
        sample_bytes=int(sample_bytes),
        record_threshold=int(record_threshold),
    )


def totals() -> MemTotals:
    t = MemTotals(size=ctypes.sizeof(MemTotals))
    lib().cyscope_mem_totals_get(ctypes.byref(t))
    return t


def totals_reader():
    """f(ctypes.byref(MemTotals)) -> status: the figures regions use
    (cyscope_mem_region_totals_get), allocating nothing per call."""
    lib()
    return _bare.cyscope_mem_region_totals_get


def epoch_advancer():
    """f(ctypes.byref(c_uint32)) -> status: cyscope_mem_next_epoch, allocating nothing per call."""
    lib()
    return _bare.cyscope_mem_next_epoch


def scan_patched() -> int:
    """GOT slots of all loaded objects that hold a hook right now (full walk)."""
    n = ctypes.c_uint64(0)
    lib().cyscope_mem_scan_patched(ctypes.byref(n))
    return n.value


def _fetch(call, *args) -> list[StackStat]:
    cap = 256
    while True:
        buf = (StackStat * cap)()
        n = ctypes.c_size_t(0)
        rc = call(*args, buf, cap, ctypes.byref(n))
        if rc == ENOMEM:
            cap = max(cap * 2, n.value + 64)
            continue
        if rc != OK:
            return []
        return list(buf[: n.value])


def live_by_stack(lo: int, hi: int) -> list[StackStat]:
    return _fetch(lib().cyscope_mem_live_by_stack, lo, hi)


def stack_totals() -> list[StackStat]:
    return _fetch(lib().cyscope_mem_stack_totals)


def stack_changes(lo: int, hi: int) -> list[StackStat]:
    """What epochs lo..hi allocated, by stack (from the native change log)."""
    return _fetch(lib().cyscope_mem_stack_changes, lo, hi)


def peak_by_stack() -> tuple[list[StackStat], int]:
    """The stacks live at the peak, and the bytes current then."""
    cur = ctypes.c_int64(0)
    stacks = _fetch(lambda buf, cap, n: lib().cyscope_mem_peak_by_stack(buf, cap, n, ctypes.byref(cur)))
    return stacks, cur.value


def stack_frames(stack_id: int) -> list[tuple[int, int, int]]:
    cap = 256
    buf = (MemFrame * cap)()
    n = ctypes.c_size_t(0)
    if lib().cyscope_mem_stack_frames(stack_id, buf, cap, ctypes.byref(n)) != OK:
        return []
    return [(f.id, f.line, f.kind) for f in buf[: n.value]]


def code_info(index: int) -> tuple[str, str, int]:
    fn = ctypes.c_char_p()
    nm = ctypes.c_char_p()
    first = ctypes.c_int32(0)
    if lib().cyscope_mem_code_info(index, ctypes.byref(fn), ctypes.byref(nm), ctypes.byref(first)) != OK:
        return "?", "?", 0
    return (fn.value or b"?").decode("utf-8", "replace"), (nm.value or b"?").decode("utf-8", "replace"), first.value


def has_shown_keys() -> bool:
    return lib() is not None and hasattr(_lib, "cyscope_mem_shown_keys")


def note_frames(notes: list[tuple[int, int, int, int, int, int]]) -> bool:
    """Tell the library what raw frames show as: (id, line, kind, number,
    flags, lib) each (see cyscope_mem_frame_note)."""
    if not notes:
        return True
    buf = (FrameNote * len(notes))()
    for slot, (fid, line, kind, number, flags, library) in zip(buf, notes):
        slot.frame.id, slot.frame.line, slot.frame.kind = fid, line, kind
        slot.number, slot.flags, slot.lib = number, flags, library
    return lib().cyscope_mem_note_frames(buf, len(notes)) == OK


def forget_frame_notes() -> None:
    if has_shown_keys():
        lib().cyscope_mem_forget_frame_notes()


def shown_keys(
    ids: list[int], options: int, note_unknown: Callable[[list[tuple[int, int, int]]], None]
) -> tuple[bytes, array, bytearray] | None:
    """Each stack's shown key (frame numbers, big-endian 32-bit), as
    (data, ends, fallback): stack i's key is data[ends[i-1]:ends[i]] unless
    fallback[i], a stack the library leaves to the caller. None if it cannot.

    note_unknown(frames) is called with raw frames (id, line, kind) that
    have no note yet and must note them (note_frames) before it returns.
    """
    n = len(ids)
    if not n:
        return b"", array("I"), bytearray()
    uint32s = ctypes.c_uint32 * n
    id_buf = array("I", ids)
    ends = array("I", bytes(4 * n))
    fallback = bytearray(n)
    unknown_cap = 8192
    unknown = (MemFrame * unknown_cap)()
    n_unknown, used = ctypes.c_size_t(0), ctypes.c_size_t(0)
    cap = 48 * n
    for _attempt in range(64):
        keys = bytearray(cap)
        rc = lib().cyscope_mem_shown_keys(
            uint32s.from_buffer(id_buf),
            n,
            options,
            (ctypes.c_uint8 * cap).from_buffer(keys),
            cap,
            uint32s.from_buffer(ends),
            (ctypes.c_uint8 * n).from_buffer(fallback),
            unknown,
            unknown_cap,
            ctypes.byref(n_unknown),
            ctypes.byref(used),
        )
        if rc not in (OK, ENOMEM):
            return None
        if n_unknown.value:
            note_unknown([(f.id, f.line, f.kind) for f in unknown[: min(n_unknown.value, unknown_cap)]])
            cap = max(cap, used.value)
            continue
        if rc == ENOMEM:
            cap = used.value
            continue
        return bytes(keys[: used.value]), ends, fallback
    return None


def group_keys(data: bytes, starts: array, ends: array, columns: list[array]) -> tuple[array, list[array]] | None:
    """Keys sorted and grouped in C (cyscope_keys_group): the first key of
    each group, in sorted order, and each column's running sums over the
    groups (one more entry than groups). None if the library cannot."""
    if lib() is None or not hasattr(_lib, "cyscope_keys_group"):
        return None
    n = len(starts)
    if not n:
        return array("I"), [array("d", [0.0]) for _ in columns]
    uint32s = ctypes.c_uint32 * n
    values = array("d")
    for column in columns:
        values.extend(column)
    order, scratch, firsts = (array("I", bytes(4 * n)) for _ in range(3))
    sums = array("d", bytes(8 * len(columns) * (n + 1)))
    groups = ctypes.c_size_t(0)
    rc = _lib.cyscope_keys_group(
        data,
        len(data),
        uint32s.from_buffer(starts),
        uint32s.from_buffer(ends),
        n,
        (ctypes.c_double * len(values)).from_buffer(values) if values else None,
        len(columns),
        uint32s.from_buffer(order),
        uint32s.from_buffer(scratch),
        uint32s.from_buffer(firsts),
        (ctypes.c_double * len(sums)).from_buffer(sums) if sums else None,
        ctypes.byref(groups),
    )
    if rc != OK:
        return None
    g = groups.value
    return firsts[:g], [sums[c * (n + 1) : c * (n + 1) + g + 1] for c in range(len(columns))]


TOO_MANY_NODES = "too many nodes"


def flame_tree(
    data: bytes,
    starts: array,
    ends: array,
    firsts: array,
    sums: list[array],
    width: array,
    threshold: float,
    max_nodes: int,
) -> dict | str | None:
    """The flamegraph's node columns from grouped keys (cyscope_flame_tree):
    level, frame, value, self, count and base (None without a third running
    sum in ``sums``); TOO_MANY_NODES past max_nodes; None if the library cannot."""
    if lib() is None or not hasattr(_lib, "cyscope_flame_tree"):
        return None
    cap = 2 * max_nodes + 16
    n = len(firsts)

    def doubles(column: array):
        return (ctypes.c_double * len(column)).from_buffer(column)

    level, frame = array("i", bytes(4 * cap)), array("i", bytes(4 * cap))
    value, own, count = (array("q", bytes(8 * cap)) for _ in range(3))
    base = array("q", bytes(8 * cap)) if len(sums) > 2 else None
    nodes = ctypes.c_size_t(0)
    uint32s = ctypes.c_uint32 * max(len(starts), 1)
    rc = _lib.cyscope_flame_tree(
        data,
        len(data),
        uint32s.from_buffer(starts) if len(starts) else None,
        uint32s.from_buffer(ends) if len(ends) else None,
        (ctypes.c_uint32 * max(n, 1)).from_buffer(firsts) if n else None,
        n,
        doubles(sums[0]),
        doubles(sums[1]),
        doubles(sums[2]) if base is not None else None,
        doubles(width),
        float(threshold),
        max_nodes,
        cap,
        (ctypes.c_int32 * cap).from_buffer(level),
        (ctypes.c_int32 * cap).from_buffer(frame),
        (ctypes.c_int64 * cap).from_buffer(value),
        (ctypes.c_int64 * cap).from_buffer(own),
        (ctypes.c_int64 * cap).from_buffer(count),
        (ctypes.c_int64 * cap).from_buffer(base) if base is not None else None,
        ctypes.byref(nodes),
    )
    if rc != OK:
        return None
    k = nodes.value
    if k == 0:
        return TOO_MANY_NODES
    return {
        "level": level[:k].tolist(),
        "value": value[:k].tolist(),
        "self": own[:k].tolist(),
        "count": count[:k].tolist(),
        "base": base[:k].tolist() if base is not None else None,
        "frame": frame[:k].tolist(),
    }
