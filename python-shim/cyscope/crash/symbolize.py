"""Names for the native frames of an in-process report, after the fact.

The crash handler, which may only make async-signal-safe calls, wrote each native
frame as (module, address, module base). The kernel that reads the report (the
restarted one, or the same one after ``--catch-crashes``) names them with
``addr2line`` (binutils: C function, file and line, inlined calls too) and turns
those in ``%%cython`` modules into cell lines with :mod:`.cellmap`. The result is
saved back into the report (``"symbolized": true``), so this runs once.
"""

from __future__ import annotations

import os
import shutil

from . import cellmap

ET_EXEC = 2


def _elf_type(path: str) -> int | None:
    try:
        with open(path, "rb") as f:
            head = f.read(18)
    except OSError:
        return None
    if len(head) < 18 or head[:4] != b"\x7fELF":
        return None
    return int.from_bytes(head[16:18], "little")


def _addr2line(module: str, addresses: list[int]) -> list[list[tuple[str | None, str | None, int | None]]] | None:
    """For each address, its inline chain [(function, file, line)], innermost first; None without addr2line."""
    exe = shutil.which("addr2line")
    if not exe:
        return None
    # One runner and parser of addr2line for the whole package (the memory tracker's).
    from ..memory._symbols import run_addr2line

    chains = run_addr2line(exe, module, addresses)
    if chains is None:
        return None
    return [
        [(None if f == "??" else f, None if p in ("", "??") else p, line or None) for f, p, line in chain]
        for chain in chains
    ]


def symbolize(report: dict) -> bool:
    """Name the native frames of an in-process report in place. False when addr2line is missing."""
    frames = report.get("frames") or []
    index = cellmap.CellIndex(report.get("cells", []), report.get("cell"))
    wanted: dict[str, list[int]] = {}
    lookups: list[tuple[int, str, int]] = []  # frame index, module, address in the file
    for i, frame in enumerate(frames):
        module, address, base = frame.get("module"), frame.get("address"), frame.get("module_base")
        if frame.get("kind") == "python" or not module or not address or frame.get("function"):
            continue
        pc = int(address, 16)
        at = pc if _elf_type(module) == ET_EXEC or not base else pc - int(base, 16)
        if not frame.get("exact"):
            at -= 1  # a return address: the call is the instruction before it
        wanted.setdefault(module, []).append(at)
        lookups.append((i, module, at))
    names: dict[tuple[str, int], list] = {}
    found_tool = True
    for module, addresses in wanted.items():
        chains = _addr2line(module, addresses) if os.path.exists(module) else None
        if chains is None:
            found_tool = found_tool and shutil.which("addr2line") is not None
            continue
        for at, chain in zip(addresses, chains):
            names[(module, at)] = chain
    named: dict[int, list[dict]] = {}
    for i, module, at in lookups:
        chain = names.get((module, at))
        if not chain:
            continue
        base_frame = frames[i]
        expanded = []
        for depth, (function, path, line) in enumerate(chain):
            frame = dict(base_frame)
            frame.update(function=function, file=path, line=line)
            frame["kind"] = "native"
            frame.pop("cell", None)
            if depth < len(chain) - 1:
                frame["inlined"] = True
            if depth > 0:
                frame["exact"] = False
            cell_frame = cellmap.cython_frame(frame, function, path, line, index)
            if cell_frame is not frame:
                cell_frame.update(c_function=function, c_file=path, c_line=line)
            expanded.append(cell_frame)
        named[i] = expanded
    out = []
    for i, frame in enumerate(frames):
        out.extend(named.get(i, [frame]))
    report["frames"] = out
    report["symbolized"] = found_tool
    return found_tool
