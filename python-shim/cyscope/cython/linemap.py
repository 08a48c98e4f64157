"""The .pyx line -> generated C line map, read from Cython's position comments.

Cython writes, before the C code of each source statement, a block such as::

    /* "/abs/path/_cyscope_x.pyx":12
     *     s += i
     *     return s             # <<<<<<<<<<<<<<
     */
      __pyx_v_s = ...;

The first C line after the closing ``*/`` is where a breakpoint for line 12 belongs.
"""

from __future__ import annotations

import json
import os
import re

_BLOCK = re.compile(r'^\s*/\* "(?P<file>[^"]+)":(?P<line>\d+)\s*$')


def all_position_blocks(c_lines: list[str]) -> list[tuple[int, int, str, int]]:
    """(comment line, first code line after the block, source file as written, its line),
    1-based C lines, for every source file (the allocation tracker maps any of them)."""
    blocks = []
    i, n = 0, len(c_lines)
    while i < n:
        m = _BLOCK.match(c_lines[i])
        if m:
            start = i
            j = i + 1
            while j < n and not c_lines[j].lstrip().startswith("*/"):
                j += 1
            k = j + 1
            while k < n and not c_lines[k].strip():
                k += 1
            blocks.append((start + 1, k + 1, m.group("file"), int(m.group("line"))))
            i = j + 1
            continue
        i += 1
    return blocks


def position_blocks(c_lines: list[str], pyx_name: str) -> list[tuple[int, int, int]]:
    """(comment line, first code line after the block, pyx line), 1-based C lines, for our .pyx."""
    return [(c, k, line) for c, k, f, line in all_position_blocks(c_lines) if os.path.basename(f) == pyx_name]


def build_line_map(c_path: str, pyx_path: str) -> dict:
    with open(c_path, encoding="utf-8", errors="replace") as f:
        c_lines = f.read().splitlines()
    lines: dict[str, list[int]] = {}
    for _comment, code_line, pyx_line in position_blocks(c_lines, os.path.basename(pyx_path)):
        if pyx_line == 1:
            continue  # the %%cython line: no code of the cell (0.29 puts the module's own setup there)
        targets = lines.setdefault(str(pyx_line), [])
        if code_line not in targets:
            targets.append(code_line)
    return {"v": 1, "pyx": pyx_path, "c": c_path, "lines": dict(sorted(lines.items(), key=lambda kv: int(kv[0])))}


def write_line_map(c_path: str, pyx_path: str, out_path: str, final_dir: str | None = None) -> dict:
    data = build_line_map(c_path, pyx_path)
    if final_dir is not None:  # record the paths the files will have once published
        data["c"] = os.path.join(final_dir, os.path.basename(c_path))
        data["pyx"] = os.path.join(final_dir, os.path.basename(pyx_path))
    with open(out_path, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
    return data
