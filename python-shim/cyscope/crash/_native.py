"""ctypes declarations of the crash catcher's C ABI (native/include/cyscope.h, "Crash catcher")."""

from __future__ import annotations

import ctypes
import sys

from .. import native

OK = 0
CELL_PYTHON = 0
CELL_CYTHON = 1

_P = ctypes.POINTER


class CrashConfig(ctypes.Structure):
    _fields_ = [
        ("size", ctypes.c_size_t),
        ("report_dir", ctypes.c_char_p),
        ("pending_path", ctypes.c_char_p),
        ("tracer_log_path", ctypes.c_char_p),
        ("tracer_argv", _P(ctypes.c_char_p)),
        ("tracer_envp", _P(ctypes.c_char_p)),
        ("tracer_timeout_ms", ctypes.c_uint32),
        ("report_json", ctypes.c_char_p),
        ("no_tracer_message", ctypes.c_char_p),
        ("refused_message", ctypes.c_char_p),
        ("failed_message", ctypes.c_char_p),
        ("timeout_message", ctypes.c_char_p),
    ]


_LAYOUT_FIELDS = (
    "ts_cframe",
    "cframe_current_frame",
    "ts_recursion_remaining",
    "frame_code",
    "frame_previous",
    "frame_prev_instr",
    "frame_is_entry",
    "frame_owner",
    "owner_generator",
    "code_filename",
    "code_name",
    "code_firsttraceable",
    "code_adaptive",
    "unicode_state",
    "unicode_ascii_data",
    "unicode_utf8",
)


class PyLayout(ctypes.Structure):
    _fields_ = [("size", ctypes.c_size_t)] + [(name, ctypes.c_int32) for name in _LAYOUT_FIELDS]


# CPython 3.11's thread state, interpreter frame, code and str objects
# (offsetof() against the 3.11 headers; the same in 3.11.2 and 3.11.7). Other
# versions: reports without Python frames in the in-process part (gdb still
# names every native frame) and no --catch-crashes.
_LAYOUTS = {
    (3, 11): dict(
        ts_cframe=56,
        cframe_current_frame=8,
        ts_recursion_remaining=32,
        frame_code=32,
        frame_previous=48,
        frame_prev_instr=56,
        frame_is_entry=68,
        frame_owner=69,
        owner_generator=1,
        code_filename=112,
        code_name=120,
        code_firsttraceable=168,
        code_adaptive=184,
        unicode_state=32,
        unicode_ascii_data=48,
        unicode_utf8=56,
    )
}


def python_layout() -> PyLayout | None:
    fields = _LAYOUTS.get(sys.version_info[:2])
    if fields is None or hasattr(sys, "gettotalrefcount"):  # debug builds differ
        return None
    return PyLayout(size=ctypes.sizeof(PyLayout), **fields)


_DECLS = {
    "cyscope_crash_install": [_P(CrashConfig)],
    "cyscope_crash_uninstall": [],
    "cyscope_crash_reclaim": [ctypes.POINTER(ctypes.c_int)],
    "cyscope_crash_set_python_layout": [_P(PyLayout)],
    "cyscope_crash_set_cell": [ctypes.c_int64, ctypes.c_char_p, ctypes.c_int],
    "cyscope_crash_note_cell_code": [ctypes.c_int, ctypes.c_char_p, ctypes.c_int64, ctypes.c_char_p],
    "cyscope_crash_defer_while": [ctypes.c_void_p],
    "cyscope_crash_make_guard": [ctypes.py_object, _P(ctypes.c_void_p)],
}


class CrashLibraryError(RuntimeError):
    pass


_lib = None


def library() -> ctypes.PyDLL:
    """libcyscope with the crash functions declared; raises CrashLibraryError saying why not.

    Loaded (again: the same handle) as a PyDLL, so calls keep the GIL: the
    cell notes have one writer at a time, and the guard uses the C API.
    """
    global _lib
    if _lib is not None:
        return _lib
    if native.library() is None:  # found, vetted and ABI-checked there
        raise CrashLibraryError(native.status().error or "libcyscope is not loaded")
    lib = ctypes.PyDLL(native.status().path)
    for name, argtypes in _DECLS.items():
        fn = getattr(lib, name, None)
        if fn is None:
            raise CrashLibraryError(f"{native.status().path} has no {name}: rebuild it with `npm run build`")
        fn.argtypes = argtypes
        fn.restype = ctypes.c_int
    _lib = lib
    return lib


def strings(values: list[str]) -> ctypes.Array:
    """A NULL-terminated char* array (kept alive by the caller until install copied it)."""
    arr = (ctypes.c_char_p * (len(values) + 1))()
    for i, v in enumerate(values):
        arr[i] = v.encode()
    arr[len(values)] = None
    return arr


def encode(value: str | None) -> bytes | None:
    return None if value is None else value.encode("utf-8", "surrogateescape")
