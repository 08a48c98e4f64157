"""What one tracked region (a cell, a ``with track()`` block) measured.

Totals are exact (see docs/memory-api.md for the byte unit). Stacks are
estimates in the default mode (Poisson byte sampling, scaled to be unbiased)
and exact in exact mode; blocks at or above the record threshold (128 KiB)
are always recorded with their exact size.
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from . import _lib, _symbols

# Which stack aggregate a flamegraph shows.
VIEWS = ("peak", "leaks", "allocated")


@dataclass
class StackBytes:
    stack_id: int
    epoch: int
    bytes: float
    count: float
    exact_bytes: int
    records: int


def _stats(raw) -> list[StackBytes]:
    return [StackBytes(s.stack_id, s.epoch, s.bytes, s.count, s.exact_bytes, s.records) for s in raw]


# A report keeps at most this many stacks per view (history holds 1000
# reports); the rest are merged into one "<other stacks>" entry (stack id 0).
MAX_STACKS_PER_VIEW = 5000


def cap_stacks(stats: list[StackBytes], limit: int = MAX_STACKS_PER_VIEW) -> list[StackBytes]:
    if len(stats) <= limit:
        return stats
    stats = sorted(stats, key=lambda s: -s.bytes)
    kept, rest = stats[: limit - 1], stats[limit - 1 :]
    other = StackBytes(0, 0, 0.0, 0.0, 0, 0)
    for s in rest:
        other.bytes += s.bytes
        other.count += s.count
        other.exact_bytes += s.exact_bytes
        other.records += s.records
    return [*kept, other]


@dataclass
class Report:
    """Memory of one region. Byte figures are ints; peak is relative to the start."""

    label: str = ""
    execution_count: int | None = None
    cell_id: str | None = None
    exact: bool = False
    native: bool = False
    active: bool = True
    peak_bytes: int = 0
    net_bytes: int = 0
    allocated_bytes: int = 0
    allocations: int = 0
    freed_bytes: int = 0
    frees: int = 0
    leaked_bytes: int = 0
    duration_ms: float = 0.0
    start_current_bytes: int = 0
    tracker_bytes: int = 0
    epochs: tuple[int, int] = (0, 0)
    leaks: list[StackBytes] = field(default_factory=list, repr=False)
    peak_stacks: list[StackBytes] = field(default_factory=list, repr=False)
    allocated_stacks: list[StackBytes] = field(default_factory=list, repr=False)

    def _repr_mimebundle_(self, include=None, exclude=None):
        # A report as a cell's value shows as its flamegraph (built only now).
        from ..flamegraph import flamegraph_bundle

        return flamegraph_bundle(self)

    # -- figures --------------------------------------------------------------
    def to_cell_memory(self) -> dict:
        """The protocol's cellMemory object (plus extra keys it allows).

        Figures only: nothing here symbolises a stack (which can start
        addr2line), so a cell's end costs what the cell did. Stacks are
        resolved when a report, a flamegraph or leaks_by_line() asks.
        """
        return {
            "peak_bytes": max(0, int(self.peak_bytes)),
            "net_bytes": int(self.net_bytes),
            "allocated_bytes": int(self.allocated_bytes),
            "allocations": int(self.allocations),
            "leaked_bytes": max(0, int(self.leaked_bytes)),
            "freed_bytes": int(self.freed_bytes),
            "frees": int(self.frees),
            "duration_ms": float(self.duration_ms),
            "exact": bool(self.exact),
            "native": bool(self.native),
        }

    def leaks_by_line(self, limit: int | None = None) -> list[dict]:
        """Leaked bytes grouped by the innermost attributed frame, largest first."""
        groups: dict[tuple, dict] = {}
        for s in self.leaks:
            frames = self._frames(s.stack_id)
            leaf = frames[-1] if frames else None
            key = leaf.key() if leaf else ("<unknown>", None, None, "native", None)
            g = groups.setdefault(
                key,
                {
                    "name": key[0],
                    "file": key[1],
                    "line": key[2],
                    "kind": key[3],
                    "cell": key[4],
                    "bytes": 0,
                    "count": 0,
                },
            )
            g["bytes"] += s.bytes
            g["count"] += s.count
        out = sorted(groups.values(), key=lambda g: -g["bytes"])
        for g in out:
            g["bytes"] = round(g["bytes"])
            g["count"] = round(g["count"])
        return out[:limit] if limit else out

    # -- stacks ---------------------------------------------------------------
    def _stacks(self, view: str) -> list[StackBytes]:
        if view not in VIEWS:
            raise ValueError(f"view must be one of {VIEWS}")
        return {"peak": self.peak_stacks, "leaks": self.leaks, "allocated": self.allocated_stacks}[view]

    def _frames(self, stack_id: int) -> list[_symbols.Frame]:
        """Frames of a stack, outermost first (see _resolve)."""
        return resolve_stack(stack_id, self.native)

    def shown_stacks(self, view: str = "peak", trim: bool = True, collapse_native: bool = True) -> list[tuple]:
        """[(frames as shown, bytes, count)] of a view, one entry per recorded stack.

        Frames are :class:`ShownFrame` tuples, outermost first, trimmed and
        named as :func:`shown_stack` does. Bytes and counts are floats
        (estimates in the sampled mode).
        """
        return [
            (shown_stack(s.stack_id, self.native, trim, collapse_native), s.bytes, s.count) for s in self._stacks(view)
        ]

    def stack_keys(
        self, view: str = "peak", trim: bool = True, collapse_native: bool = True, inverted: bool = False
    ) -> list[tuple]:
        """:meth:`shown_stacks` with each stack as a key (see :func:`stack_key`)."""
        return stack_keys(self._stacks(view), self.native, trim, collapse_native, inverted)

    def stack_columns(
        self, view: str = "peak", trim: bool = True, collapse_native: bool = True, inverted: bool = False
    ) -> tuple | None:
        """:meth:`stack_keys` as columns (see :func:`stack_columns`); None
        with a native library that cannot make them."""
        return stack_columns(self._stacks(view), self.native, trim, collapse_native, inverted)

    def flamegraph(self, view: str = "peak", trim: bool = True, collapse_native: bool = True) -> dict:
        """Nested dict: name, label, file, line, kind, cell, bytes, count, children.

        view: 'peak' (live at the region's peak, made in the region), 'leaks'
        (made in the region, still live at its end) or 'allocated' (everything
        the region allocated, freed or not). The root node has kind 'root'.
        Stacks start at the cell (trim=False keeps the frames above it) and
        runs of native frames of one library are one node (collapse_native=False
        keeps each frame); see :func:`shown_stack`.
        """
        root = _node(ShownFrame("<all>", "<all>", None, None, "root", None))
        for frames, nbytes, count in self.shown_stacks(view, trim, collapse_native):
            node = root
            node["bytes"] += nbytes
            node["count"] += count
            for fr in frames:
                child = node["_index"].get(fr)
                if child is None:
                    child = _node(fr)
                    node["_index"][fr] = child
                    node["children"].append(child)
                child["bytes"] += nbytes
                child["count"] += count
                node = child
        return _finish(root)

    def to_folded(self, view: str = "peak", trim: bool = True, collapse_native: bool = True) -> str:
        """Brendan Gregg's folded stacks: 'outer;inner bytes' per line, frames by their labels."""
        lines: dict[str, float] = {}
        for frames, nbytes, _count in self.shown_stacks(view, trim, collapse_native):
            key = ";".join(f.label.replace(";", ",") for f in frames) or "<unknown>"
            lines[key] = lines.get(key, 0.0) + nbytes
        return "".join(f"{k} {round(v)}\n" for k, v in sorted(lines.items()) if round(v) > 0)

    def to_speedscope(self, view: str = "peak", trim: bool = True, collapse_native: bool = True) -> dict:
        """A speedscope file (JSON-ready dict), one 'sampled' profile in bytes."""
        name = self.label or "cyscope"
        frames: list[dict] = []
        profile = self.speedscope_profile(view, frames, {}, trim, collapse_native)
        return {
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "exporter": "cyscope",
            "name": name,
            "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": [profile],
        }

    def speedscope_profile(
        self, view: str, frames: list[dict], index: dict, trim: bool = True, collapse_native: bool = True
    ) -> dict:
        """This report's speedscope profile; its frames are added to a shared
        ``frames`` list (``index`` maps a frame to its position), so several
        reports can go in one file."""
        samples: list[list[int]] = []
        weights: list[int] = []
        for shown, nbytes, _count in self.shown_stacks(view, trim, collapse_native):
            stack = []
            for fr in shown:
                if fr not in index:
                    index[fr] = len(frames)
                    entry = {"name": fr.label}
                    if fr.file:
                        entry["file"] = fr.file
                    if fr.line:
                        entry["line"] = fr.line
                    frames.append(entry)
                stack.append(index[fr])
            w = round(nbytes)
            if w > 0:
                samples.append(stack)
                weights.append(w)
        name = self.label or "cyscope"
        return {
            "type": "sampled",
            "name": f"{name} ({view})",
            "unit": "bytes",
            "startValue": 0,
            "endValue": sum(weights),
            "samples": samples,
            "weights": weights,
        }


def _node(fr: ShownFrame) -> dict:
    node = {
        "name": fr.name,
        "label": fr.label,
        "file": fr.file,
        "line": fr.line,
        "kind": fr.kind,
        "cell": fr.cell,
        "bytes": 0.0,
        "count": 0.0,
        "children": [],
        "_index": {},
    }
    if fr.run:
        node["frames"] = [{"name": f.name, "file": f.file, "line": f.line} for f in fr.run]
    return node


def _finish(node: dict) -> dict:
    node.pop("_index", None)
    node["bytes"] = round(node["bytes"])
    node["count"] = round(node["count"])
    node["children"] = sorted((_finish(c) for c in node["children"]), key=lambda c: -c["bytes"])
    return node


# -- stacks as a person reads them ----------------------------------------------


@dataclass(frozen=True)
class ShownFrame:
    """One frame of a stack as the flamegraph shows it.

    ``kind`` is 'cell' (a cell's own top-level code), 'python', 'cython' or
    'native'; ``cell`` the execution count of the cell the frame's code is
    in. A collapsed run of native frames keeps them in ``run``.
    """

    label: str
    name: str
    file: str | None
    line: int | None
    kind: str
    cell: int | None
    run: tuple = ()


# Frames that run a cell rather than belong to it: a stack that reaches no
# cell starts after them. Matched on the file's path.
_HOST_DIRS = (
    "/ipykernel/",
    "/IPython/",
    "/tornado/",
    "/asyncio/",
    "/traitlets/",
    "/zmq/",
    "/jupyter_client/",
    "/jupyter_core/",
    "/concurrent/futures/",
    "/_pytest/",
    "/pluggy/",
    "/cyscope/",
)
_HOST_FILES = ("runpy.py", "threading.py", "selectors.py", "ipykernel_launcher.py")


def _is_host(fr: _symbols.Frame) -> bool:
    f = fr.file or ""
    if fr.kind != "python":
        return False
    return f.startswith("<frozen ") or any(d in f for d in _HOST_DIRS) or f.rsplit("/", 1)[-1] in _HOST_FILES


def _is_import_machinery(fr: _symbols.Frame) -> bool:
    return fr.kind == "python" and (fr.file or "").startswith("<frozen importlib")


def _is_cell_code(fr: _symbols.Frame) -> bool:
    return fr.kind == "python" and fr.cell is not None and fr.name == "<module>"


def _trim(frames: list[_symbols.Frame]) -> list[_symbols.Frame]:
    """Start at the cell: its innermost top-level code (under ``%%memory`` the
    body, not the ``%%memory`` line that runs it), else the outermost frame
    of any cell (a thread's target defined in a cell), else after the host's
    frames (keeping the innermost Python frame). Import machinery frames
    (``<frozen importlib._bootstrap>``) are dropped wherever they are."""
    start = next((i for i in range(len(frames) - 1, -1, -1) if _is_cell_code(frames[i])), None)
    if start is None:
        start = next((i for i, fr in enumerate(frames) if fr.cell is not None), None)
    if start is None:
        last_py = max((i for i, fr in enumerate(frames) if fr.kind == "python"), default=-1)
        start = 0
        while start < last_py and _is_host(frames[start]):
            start += 1
    return [fr for fr in frames[start:] if not _is_import_machinery(fr)]


def _short_path(path: str) -> str:
    parts = path.rstrip("/").split("/")
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _library(fr: _symbols.Frame) -> str:
    """The short name of a frame's shared object: 'libstdc++' for
    /usr/lib/x86_64-linux-gnu/libstdc++.so.6."""
    base = (fr.obj or fr.file or "?").rsplit("/", 1)[-1]
    # _ctypes.cpython-311-x86_64-linux-gnu.so -> _ctypes
    return base.split(".so", 1)[0].split(".cpython-", 1)[0]


def frame_label(fr: _symbols.Frame) -> str:
    """A frame as a person names it: ``cell [4] line 2``, ``grow · cell [3] line 9``,
    ``zeros · numpy/core/numeric.py:12``, ``operator new(unsigned long) · libstdc++``."""
    if fr.kind in ("python", "cython"):
        if fr.cell is not None:
            where = f"cell [{fr.cell}]" + (f" line {fr.line}" if fr.line else "")
            return where if fr.kind == "python" and fr.name == "<module>" else f"{fr.name} · {where}"
        if fr.file:
            return f"{fr.name} · {_short_path(fr.file)}" + (f":{fr.line}" if fr.line else "")
        return fr.name
    if fr.obj or fr.file:
        return f"{fr.name} · {_library(fr)}"
    return fr.name


def _shown(fr: _symbols.Frame) -> ShownFrame:
    kind = "cell" if _is_cell_code(fr) else fr.kind
    return ShownFrame(frame_label(fr), fr.name, fr.file, fr.line, kind, fr.cell)


def _collapse(frames: list[_symbols.Frame]) -> list:
    """Runs of two or more native frames of one library become one
    ShownFrame; every other frame is left as it is."""
    out: list = []
    i = 0
    n = len(frames)
    while i < n:
        fr = frames[i]
        j = i + 1
        if fr.kind == "native" and (fr.obj or fr.file):
            lib = _library(fr)
            while j < n and frames[j].kind == "native" and _library(frames[j]) == lib:
                j += 1
        if j - i >= 2:
            run = tuple(frames[i:j])
            label = f"{_library(fr)}: {j - i} frames"
            out.append(ShownFrame(label, label, fr.obj or fr.file, None, "native", None, run))
        else:
            out.append(fr)
        i = j
    return out


# Every ShownFrame seen is numbered once, and a stack is also kept as a key:
# its frame numbers, 4 bytes each, big-endian. The flamegraph payload is
# built on these keys (sorting and bisecting bytes runs in C, which keeps
# 100,000 stacks fast).
KEY_WIDTH = 4
_frame_numbers: dict[ShownFrame, int] = {}
_numbered_frames: list[ShownFrame] = []
# id(raw frame) -> (raw frame, its ShownFrame, its number as key bytes); the
# raw frame is kept so that its id is never reused while the entry lives.
_shown_memo: dict[int, tuple] = {}
# (stack id, flags) -> [shown frames, key, inverted key or None]
_shown_cache: dict[int, list] = {}
# The caches of resolved and shown stacks are emptied past this many entries.
# It must exceed what one report can ask for at once: a cache emptied in the
# middle of a report is emptied on every later one too (a flamegraph of a report
# of 100,000 paths, each a Python object and its buffer, asks for 200,000
# stacks; with a bound of 200,000 each build resolved every stack again, 20x).
CACHED_STACKS = 500_000


def frame_number(fr: ShownFrame) -> int:
    n = _frame_numbers.get(fr)
    if n is None:
        n = _frame_numbers[fr] = len(_numbered_frames)
        _numbered_frames.append(fr)
    return n


def numbered_frame(n: int) -> ShownFrame:
    """The frame a number in a stack key stands for."""
    return _numbered_frames[n]


def _shown_numbered(fr: _symbols.Frame) -> tuple:
    hit = _shown_memo.get(id(fr))
    if hit is None:
        shown = _shown(fr)
        hit = _shown_memo[id(fr)] = (fr, shown, frame_number(shown).to_bytes(KEY_WIDTH, "big"))
    return hit


def _flags(native: bool, trim: bool, collapse_native: bool) -> int:
    return (4 if native else 0) | (2 if trim else 0) | (1 if collapse_native else 0)


def _shown_entry(stack_id: int, native: bool, trim: bool, collapse_native: bool) -> list:
    key = stack_id << 3 | _flags(native, trim, collapse_native)
    hit = _shown_cache.get(key)
    if hit is not None:
        return hit
    frames = resolve_stack(stack_id, native)
    if trim:
        frames = _trim(frames)
    if collapse_native:
        shown, numbers = [], []
        for item in _collapse(frames):
            if isinstance(item, ShownFrame):  # a collapsed run
                shown.append(item)
                numbers.append(frame_number(item).to_bytes(KEY_WIDTH, "big"))
            else:
                _raw, fr, number = _shown_numbered(item)
                shown.append(fr)
                numbers.append(number)
    else:
        entries = [_shown_numbered(fr) for fr in frames]
        shown, numbers = [e[1] for e in entries], [e[2] for e in entries]
    entry = [tuple(shown), b"".join(numbers), None]  # the inverted key is made when asked for
    if len(_shown_cache) > CACHED_STACKS:
        _shown_cache.clear()
    if len(_shown_memo) > 500_000:
        _shown_memo.clear()
    _shown_cache[key] = entry
    return entry


def shown_stack(stack_id: int, native: bool, trim: bool = True, collapse_native: bool = True) -> tuple:
    """A recorded stack as the flamegraph shows it, outermost first.

    trim: start at the cell (see :func:`_trim`); collapse_native: one frame
    for each run of native frames of one library ("libstdc++: 3 frames").
    """
    return _shown_entry(stack_id, native, trim, collapse_native)[0]


def _inverted_key(entry: list) -> bytes:
    if entry[2] is None:
        k = entry[1]
        entry[2] = b"".join(k[i : i + KEY_WIDTH] for i in range(len(k) - KEY_WIDTH, -1, -KEY_WIDTH))
    return entry[2]


def stack_key(stack_id: int, native: bool, trim: bool = True, collapse_native: bool = True, inverted=False) -> bytes:
    """:func:`shown_stack` as a key (see KEY_WIDTH); inverted: innermost first."""
    entry = _shown_entry(stack_id, native, trim, collapse_native)
    return _inverted_key(entry) if inverted else entry[1]


def stack_keys(stacks: list[StackBytes], native: bool, trim: bool, collapse_native: bool, inverted: bool) -> list:
    """(key, bytes, count) of each stack (see :func:`stack_key`)."""
    columns = stack_columns(stacks, native, trim, collapse_native, inverted)
    if columns is not None:
        data, starts, ends, value, count = columns
        keys = list(map(data.__getitem__, map(slice, starts, ends)))
        return list(zip(keys, value, count))
    flags = _flags(native, trim, collapse_native)
    ids = list(map(attrgetter("stack_id"), stacks))
    entries = list(map(_shown_cache.get, [i << 3 | flags for i in ids]))
    if None in entries:
        entries = [e or _shown_entry(i, native, trim, collapse_native) for i, e in zip(ids, entries)]
    keys = list(map(_inverted_key, entries)) if inverted else list(map(itemgetter(1), entries))
    return list(zip(keys, map(attrgetter("bytes"), stacks), map(attrgetter("count"), stacks)))


def stack_columns(
    stacks: list[StackBytes], native: bool, trim: bool, collapse_native: bool, inverted: bool
) -> tuple[bytes, array, array, array, array] | None:
    """Every stack's key, bytes and count as columns: (data, starts, ends,
    bytes, count), stack i's key being data[starts[i]:ends[i]]. None with a
    native library that cannot (then see stack_keys).

    A flamegraph reads every stack of a report (100,000 of them, each of 10
    to 30 frames), so the walk over each stack's frames is the native
    library's (cyscope_mem_shown_keys, the rules of shown_stack); this module
    names each raw frame once (_note_frames) and builds the few stacks the
    library leaves to it (a run of native frames to collapse, the merged
    rest of a capped report).
    """
    if not _lib.has_shown_keys():
        return None
    ids = list(map(attrgetter("stack_id"), stacks))
    options = _flags(native, trim, collapse_native) | (_lib.KEYS_INVERTED if inverted else 0)
    got = _lib.shown_keys(ids, options, _note_frames)
    if got is None:
        return None
    data, ends, fallback = got
    starts = array("I", [0]) + ends[:-1] if ends else array("I")
    if any(fallback):
        extra = bytearray()
        for i in [i for i, f in enumerate(fallback) if f]:
            key = stack_key(ids[i], native, trim, collapse_native, inverted)
            starts[i] = len(data) + len(extra)
            extra += key
            ends[i] = len(data) + len(extra)
        data += bytes(extra)
    value = array("d", map(attrgetter("bytes"), stacks))
    count = array("d", map(attrgetter("count"), stacks))
    return data, starts, ends, value, count


_libraries: dict[str, int] = {}
# Raw frames noted in the library since it last forgot them.
_noted = 0
MAX_NOTED = 1_000_000


def _note_frames(raw: list[tuple[int, int, int]]) -> None:
    """Tell the native library what each raw frame shows as (see
    cyscope_mem_frame_note): a native frame's ``line`` there is the mode
    (1: native stacks), since the modes name native frames differently."""
    global _noted
    if _noted + len(raw) > MAX_NOTED:
        _lib.forget_frame_notes()
        _noted = 0
    notes = []
    natives: dict[int, list[int]] = {}
    for fid, line, kind in dict.fromkeys(raw):
        if kind == _lib.FRAME_PYTHON:
            fr = _python_frame(fid, line)
            flags = (
                (_lib.NOTE_CELL_CODE if _is_cell_code(fr) else 0)
                | (_lib.NOTE_IN_CELL if fr.cell is not None else 0)
                | (_lib.NOTE_HOST if _is_host(fr) else 0)
                | (_lib.NOTE_IMPORT if _is_import_machinery(fr) else 0)
            )
            notes.append((fid, line, kind, frame_number(_shown_numbered(fr)[1]), flags, 0))
        else:
            natives.setdefault(line, []).append(fid)
    for mode, pcs in natives.items():
        resolved = _symbols.native_frames(pcs, full=bool(mode))
        for pc in pcs:
            fr = resolved[pc]
            flags, library = 0, 0
            if mode and fr.kind == "native" and "_PyEval_EvalFrame" in fr.name:
                flags |= _lib.NOTE_EVAL_LOOP
            if not (mode or fr.kind == "cython"):
                flags |= _lib.NOTE_HIDDEN
            if fr.cell is not None:
                flags |= _lib.NOTE_IN_CELL
            if fr.kind == "native" and (fr.obj or fr.file):
                flags |= _lib.NOTE_LIBRARY
                library = _libraries.setdefault(_library(fr), len(_libraries) + 1)
            notes.append((pc, mode, _lib.FRAME_NATIVE, frame_number(_shown_numbered(fr)[1]), flags, library))
    if _lib.note_frames(notes):
        _noted += len(notes)


_py_frames: dict[int, _symbols.Frame] = {}


def _python_frame(code_index: int, line: int) -> _symbols.Frame:
    # One Frame object per (code, line), so the shown form is made once.
    key = code_index << 32 | line
    fr = _py_frames.get(key)
    if fr is None:
        if len(_py_frames) > 500_000:
            _py_frames.clear()
        fr = _py_frames[key] = _symbols.python_frame(code_index, line)
    return fr


_resolved: dict[tuple[int, bool], list] = {}


def resolve_stack(stack_id: int, native: bool) -> list[_symbols.Frame]:
    """Frames of a recorded stack, outermost first.

    Python frames come first (outermost first), then native frames below the
    innermost Python frame. Without native stacks only Cython frames (native
    frames that map to a .pyx line) are kept; with them, the interpreter's own
    frames (everything from the innermost _PyEval_EvalFrame outwards, which the
    Python frames already describe) are dropped.
    """
    if stack_id == 0:
        return [_symbols.Frame("<other stacks>", None, None, "native")]
    key = (stack_id, native)
    hit = _resolved.get(key)
    if hit is not None:
        return hit
    raw = _lib.stack_frames(stack_id)
    py = [_python_frame(fid, line) for fid, line, kind in raw if kind == _lib.FRAME_PYTHON]
    pcs = [fid for fid, _line, kind in raw if kind == _lib.FRAME_NATIVE]
    nat = _symbols.native_frames(pcs, full=native)
    natives = []
    for pc in pcs:  # innermost first
        fr = nat.get(pc)
        if fr is None:
            continue
        if native and fr.kind == "native" and "_PyEval_EvalFrame" in fr.name:
            break
        if native or fr.kind == "cython":
            natives.append(fr)
    frames = list(reversed(py)) + list(reversed(natives))
    if len(_resolved) > CACHED_STACKS:
        _resolved.clear()
    _resolved[key] = frames
    return frames


def stats_live(lo: int, hi: int) -> list[StackBytes]:
    return _stats(_lib.live_by_stack(lo, hi))
