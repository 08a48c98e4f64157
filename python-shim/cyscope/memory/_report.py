"""What one tracked region (a cell, a ``with track()`` block) measured.

Totals are exact (see docs/memory-api.md for the byte unit). Stacks are
estimates in the default mode (Poisson byte sampling, scaled to be unbiased)
and exact in exact mode; blocks at or above the record threshold (128 KiB)
are always recorded with their exact size.
"""

from __future__ import annotations

from dataclasses import dataclass, field

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

    # -- figures --------------------------------------------------------------
    def to_cell_memory(self) -> dict:
        """The protocol's cellMemory object (plus extra keys it allows)."""
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
            "leaks_by_line": self.leaks_by_line(limit=20),
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

    def flamegraph(self, view: str = "peak") -> dict:
        """Nested dict: name, file, line, kind, cell, bytes, count, children.

        view: 'peak' (live at the region's peak, made in the region), 'leaks'
        (made in the region, still live at its end) or 'allocated' (everything
        the region allocated, freed or not). The root node has kind 'root'.
        """
        root = _node("<all>", None, None, "root", None)
        for s in self._stacks(view):
            node = root
            node["bytes"] += s.bytes
            node["count"] += s.count
            for fr in self._frames(s.stack_id):
                child = node["_index"].get(fr.key())
                if child is None:
                    child = _node(fr.name, fr.file, fr.line, fr.kind, fr.cell)
                    node["_index"][fr.key()] = child
                    node["children"].append(child)
                child["bytes"] += s.bytes
                child["count"] += s.count
                node = child
        return _finish(root)

    def to_folded(self, view: str = "peak") -> str:
        """Brendan Gregg's folded stacks: 'outer;inner bytes' per line."""
        lines: dict[str, float] = {}
        for s in self._stacks(view):
            frames = self._frames(s.stack_id) or [_symbols.Frame("<unknown>", None, None, "native")]
            key = ";".join(_label(f) for f in frames)
            lines[key] = lines.get(key, 0.0) + s.bytes
        return "".join(f"{k} {round(v)}\n" for k, v in sorted(lines.items()) if round(v) > 0)

    def to_speedscope(self, view: str = "peak") -> dict:
        """A speedscope file (JSON-ready dict), one 'sampled' profile in bytes."""
        frames: list[dict] = []
        index: dict[tuple, int] = {}
        samples: list[list[int]] = []
        weights: list[int] = []
        for s in self._stacks(view):
            stack = []
            for fr in self._frames(s.stack_id):
                k = fr.key()
                if k not in index:
                    index[k] = len(frames)
                    entry = {"name": _label(fr, short=True)}
                    if fr.file:
                        entry["file"] = fr.file
                    if fr.line:
                        entry["line"] = fr.line
                    frames.append(entry)
                stack.append(index[k])
            w = round(s.bytes)
            if w > 0:
                samples.append(stack)
                weights.append(w)
        total = sum(weights)
        name = self.label or "cyscope"
        return {
            "$schema": "https://www.speedscope.app/file-format-schema.json",
            "exporter": "cyscope",
            "name": name,
            "activeProfileIndex": 0,
            "shared": {"frames": frames},
            "profiles": [
                {
                    "type": "sampled",
                    "name": f"{name} ({view})",
                    "unit": "bytes",
                    "startValue": 0,
                    "endValue": total,
                    "samples": samples,
                    "weights": weights,
                }
            ],
        }


def _node(name, file, line, kind, cell) -> dict:
    return {
        "name": name,
        "file": file,
        "line": line,
        "kind": kind,
        "cell": cell,
        "bytes": 0.0,
        "count": 0.0,
        "children": [],
        "_index": {},
    }


def _finish(node: dict) -> dict:
    node.pop("_index", None)
    node["bytes"] = round(node["bytes"])
    node["count"] = round(node["count"])
    node["children"] = sorted((_finish(c) for c in node["children"]), key=lambda c: -c["bytes"])
    return node


def _label(fr: _symbols.Frame, short: bool = False) -> str:
    where = f"cell [{fr.cell}]" if fr.cell is not None else (fr.file or "?")
    if short and fr.cell is None and fr.file:
        where = fr.file.rsplit("/", 1)[-1]
    line = f":{fr.line}" if fr.line else ""
    # ';' separates frames in the folded format.
    return f"{fr.name} ({where}{line})".replace(";", ",")


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
    py = [_symbols.python_frame(fid, line) for fid, line, kind in raw if kind == _lib.FRAME_PYTHON]
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
    if len(_resolved) > 200_000:
        _resolved.clear()
    _resolved[key] = frames
    return frames


def stats_live(lo: int, hi: int) -> list[StackBytes]:
    return _stats(_lib.live_by_stack(lo, hi))
