"""Python frames in recorded stacks: give the hooks the interpreter's frame
layout, then check on a real allocation that they read it right."""

from __future__ import annotations

import ctypes
import logging

from . import _lib

log = logging.getLogger("cyscope.memory")


def _layout_probe() -> bytearray:
    # Above the record threshold: always recorded with its stack.
    return bytearray(512 * 1024)


class PythonFrames:
    """Whether the hooks read Python frames (set up once per process)."""

    def __init__(self) -> None:
        self.checked = False
        self.ok = False

    def setup(self) -> None:
        if self.checked:
            return
        self.checked = True
        lib = _lib.lib()
        layout = _lib.python_layout()
        if layout is None:
            log.info("cyscope: no frame layout for this Python; stacks will have no Python frames")
            return
        if lib.cyscope_mem_set_python_layout(ctypes.byref(layout)) != _lib.OK:
            log.info("cyscope: Python symbols not found in the process; no Python frames")
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
            log.warning("cyscope: Python frame layout check failed; stacks will have no Python frames")
