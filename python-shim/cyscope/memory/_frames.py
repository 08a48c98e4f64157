"""Python frames in recorded stacks.

The hooks read the interpreter's frames straight from memory, so they need
the offsets of a few fields of its internal structs. Where they come from
follows the interpreter, never a hand-measured table:

* CPython 3.13 publishes them itself, for tools like this one, in the
  ``_Py_DebugOffsets`` at the start of ``_PyRuntime``; read at run time.
* 3.11 and 3.12 do not: ``py_layouts.json`` holds the offsets that
  ``native/tools/gen_py_layouts.py`` compiled out of each version's own
  headers (and that the tests check against the headers of the interpreter
  they run on). It also supplies the two facts 3.13's table lacks (the
  first traceable instruction of a code object, the frame owner values).

Whatever the source, the layout is then checked on a real allocation. A
version cyscope does not know (3.14 and later, a debug build) gets totals
and native frames without Python frames, and says so (``reason``).
"""

from __future__ import annotations

import ctypes
import json
import logging
import sys
from pathlib import Path

from . import _lib

log = logging.getLogger("cyscope.memory")

_TABLE = Path(__file__).with_name("py_layouts.json")
KNOWN = "3.11 to 3.13"

# _Py_DebugOffsets of 3.13 (Include/internal/pycore_runtime.h): after the
# cookie, every field is a uint64; each section starts with its own size.
_DEBUG_COOKIE = b"xdebugpy"
_DEBUG_313_SECTIONS = (
    ("", ("version", "free_threaded")),
    ("runtime_state", ("size", "finalizing", "interpreters_head")),
    (
        "interpreter_state",
        (
            "size",
            "id",
            "next",
            "threads_head",
            "gc",
            "imports_modules",
            "sysdict",
            "builtins",
            "ceval_gil",
            "gil_runtime_state",
            "gil_runtime_state_enabled",
            "gil_runtime_state_locked",
            "gil_runtime_state_holder",
        ),
    ),
    (
        "thread_state",
        (
            "size",
            "prev",
            "next",
            "interp",
            "current_frame",
            "thread_id",
            "native_thread_id",
            "datastack_chunk",
            "status",
        ),
    ),
    ("interpreter_frame", ("size", "previous", "executable", "instr_ptr", "localsplus", "owner")),
    (
        "code_object",
        (
            "size",
            "filename",
            "name",
            "qualname",
            "linetable",
            "firstlineno",
            "argcount",
            "localsplusnames",
            "localspluskinds",
            "co_code_adaptive",
        ),
    ),
    ("pyobject", ("size", "ob_type")),
    ("type_object", ("size", "tp_name", "tp_repr", "tp_flags")),
    ("tuple_object", ("size", "ob_item", "ob_size")),
    ("list_object", ("size", "ob_item", "ob_size")),
    ("dict_object", ("size", "ma_keys", "ma_values")),
    ("float_object", ("size", "ob_fval")),
    ("long_object", ("size", "lv_tag", "ob_digit")),
    ("bytes_object", ("size", "ob_size", "ob_sval")),
    ("unicode_object", ("size", "state", "length", "asciiobject_size")),
    ("gc", ("size", "collecting")),
)
_DEBUG_313 = tuple(f"{section}.{f}" if section else f for section, fields in _DEBUG_313_SECTIONS for f in fields)


def header_table() -> dict:
    """py_layouts.json: {"3.11": {"from": [...], "offsets": {...}}, ...}."""
    try:
        return json.loads(_TABLE.read_text())
    except (OSError, ValueError):
        return {}


def debug_offsets() -> dict | None:
    """3.13+'s own _Py_DebugOffsets, as {"section.field": offset}, or None."""
    try:
        runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    except (ValueError, AttributeError):
        return None
    if ctypes.string_at(runtime, 8) != _DEBUG_COOKIE:
        return None
    values = (ctypes.c_uint64 * len(_DEBUG_313)).from_address(runtime + 8)
    table = dict(zip(_DEBUG_313, values))
    if table["version"] >> 16 != 0x030D:  # the struct grew in 3.14: read only 3.13's
        return None
    return table


def _from_debug_offsets(d: dict, extra: dict) -> dict:
    ascii_size = d["unicode_object.asciiobject_size"]
    return {
        "ts_cframe": -1,
        "cframe_current_frame": -1,
        "ts_frame": d["thread_state.current_frame"],
        "frame_code": d["interpreter_frame.executable"],
        "frame_instr": d["interpreter_frame.instr_ptr"],
        "frame_previous": d["interpreter_frame.previous"],
        "frame_owner": d["interpreter_frame.owner"],
        # Not in the table: the owner values are a stable enum; without the
        # headers' offset, frames being set up are not told apart (harmless).
        "owner_generator": extra.get("owner_generator", 1),
        "owner_cstack": extra.get("owner_cstack", 3),
        "code_filename": d["code_object.filename"],
        "code_name": d["code_object.name"],
        "code_firstlineno": d["code_object.firstlineno"],
        "code_firsttraceable": extra.get("code_firsttraceable", -1),
        "code_adaptive": d["code_object.co_code_adaptive"],
        "object_type": d["pyobject.ob_type"],
        "unicode_state": d["unicode_object.state"],
        "unicode_length": d["unicode_object.length"],
        # PyCompactUnicodeObject: the ASCII header, utf8_length, utf8.
        "unicode_ascii_data": ascii_size,
        "unicode_utf8": ascii_size + 8,
    }


def layout_for_this_python() -> tuple[dict | None, str, str | None]:
    """(offsets, where they came from, why there are none)."""
    version = "{}.{}".format(*sys.version_info[:2])
    if hasattr(sys, "gettotalrefcount"):
        return None, "", f"Python {version} is a debug build (its structs differ)"
    entry = header_table().get(version)
    if sys.version_info >= (3, 13):
        d = debug_offsets()
        if d is None:
            return None, "", f"Python {sys.version.split()[0]} is not a version cyscope reads frames of ({KNOWN})"
        if d["free_threaded"]:
            return None, "", "a free-threaded Python (not supported)"
        extra = entry["offsets"] if entry else {}
        return _from_debug_offsets(d, extra), "the interpreter's _Py_DebugOffsets", None
    if entry is None:
        return None, "", f"Python {sys.version.split()[0]} is not a version cyscope reads frames of ({KNOWN})"
    return dict(entry["offsets"]), f"CPython {version} headers (py_layouts.json)", None


def _layout_probe() -> bytearray:
    # Above the record threshold: always recorded with its stack.
    return bytearray(512 * 1024)


class PythonFrames:
    """Whether the hooks read Python frames (set up once per process)."""

    def __init__(self) -> None:
        self.checked = False
        self.ok = False
        self.source = ""
        self.reason: str | None = None  # why stacks have no Python frames

    def _fail(self, reason: str, level=logging.WARNING) -> None:
        self.reason = reason
        log.log(level, "cyscope: stacks will have no Python frames: %s", reason)

    def setup(self) -> None:
        if self.checked:
            return
        self.checked = True
        lib = _lib.lib()
        offsets, self.source, reason = layout_for_this_python()
        if offsets is None:
            self._fail(reason)
            return
        layout = _lib.PyLayout(size=ctypes.sizeof(_lib.PyLayout))
        for name, value in offsets.items():
            setattr(layout, "frame_prev_instr" if name == "frame_instr" else name, value)
        if lib.cyscope_mem_set_python_layout(ctypes.byref(layout)) != _lib.OK:
            self._fail("the interpreter's symbols were not found in the process")
            return
        # Verify on a real allocation: the probe's own frame must show up.
        if lib.cyscope_mem_attach(ctypes.byref(_lib.config_struct(False, False))) != _lib.OK:
            return
        epoch = ctypes.c_uint32()
        lib.cyscope_mem_next_epoch(ctypes.byref(epoch))
        keep = _layout_probe()
        stats = _lib.live_by_stack(epoch.value, epoch.value)
        names = set()
        for s in stats:
            for fid, _line, kind in _lib.stack_frames(s.stack_id):
                if kind == _lib.FRAME_PYTHON:
                    names.add(_lib.code_info(fid)[1])
        del keep
        lib.cyscope_mem_detach()
        self.ok = "_layout_probe" in names
        if not self.ok:
            lib.cyscope_mem_set_python_layout(None)
            self._fail(f"the frame layout from {self.source} did not check out on a real allocation")
