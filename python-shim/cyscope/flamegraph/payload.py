"""The flamegraph MIME payload (protocol/flamegraph.schema.json, version 1).

A tree of frames is sent as a nested set: one entry per node in depth-first
order, with its depth (``level``), its bytes including its children
(``value``), its own bytes (``self``) and its allocation count, plus the
index of its frame in a columnar frame table whose strings are in one string
table. Siblings come largest first. Under a threshold, a parent's small
children are merged into one "other" node, so the payload stays small (about
25 bytes a node) whatever the report holds.

Stacks come in as byte keys (``memory._report.stack_key``: frame numbers,
4 bytes each), as rows or as columns (``StackColumns``: one buffer, as the
native library writes them). Sorted and grouped (in the native library when
it is loaded), every node of the tree is a range of stacks, found by
bisection and sized from running sums, so the work grows with the nodes
sent, not with the stacks' depth, and a merged subtree is never walked
(``scripts/bench_flamegraph_payload.py`` times it).
"""

from __future__ import annotations

import gc
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from functools import cached_property
from itertools import accumulate, compress, islice
from operator import add, itemgetter, ne
from struct import unpack_from
from typing import NamedTuple

MIME = "application/vnd.cyscope.flamegraph.v1+json"
VERSION = 1
KINDS = ("root", "cell", "python", "cython", "native", "other")
_KIND_INDEX = {k: i for i, k in enumerate(KINDS)}

# Siblings smaller than this share of the total are merged, by default.
DEFAULT_THRESHOLD_SHARE = 1e-5
# A payload never has more nodes than this: the threshold rises to fit.
MAX_NODES = 100_000


class Frame:
    """What the payload needs of a frame (``memory._report.ShownFrame`` has it)."""

    label: str
    name: str
    file: str | None
    line: int | None
    kind: str
    cell: int | None
    run: tuple


Stack = tuple[bytes, float, float]  # (key, bytes, count); see memory._report.stack_key
KEY_WIDTH = 4
# Sorts after every key that starts with a given prefix.
_PAST = b"\xff" * (KEY_WIDTH + 1)


def decode_key(key: bytes, start: int = 0, stop: int | None = None) -> tuple[int, ...]:
    """Frame numbers of key[start:stop] (counted in frames)."""
    stop = len(key) // KEY_WIDTH if stop is None else stop
    return unpack_from(f">{stop - start}I", key, start * KEY_WIDTH)


@contextmanager
def no_collection():
    """Build without the cyclic garbage collector: the hundreds of thousands
    of short-lived tuples and lists made here are in no cycle, and each
    collection they would trigger walks the kernel's whole heap."""
    paused = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if paused:
            gc.enable()


class StackColumns(NamedTuple):
    """Stacks as columns (``memory._report.stack_columns`` makes them):
    stack i's key is data[starts[i]:ends[i]], its bytes value[i], its
    allocations count[i]."""

    data: bytes
    starts: array
    ends: array
    value: array
    count: array

    @classmethod
    def from_rows(cls, rows: Iterable[Stack]) -> StackColumns:
        rows = list(rows)
        keys = list(map(itemgetter(0), rows))
        ends = array("I", accumulate(map(len, keys)))
        starts = array("I", [0]) + ends[:-1] if rows else array("I")
        value = array("d", map(itemgetter(1), rows))
        return cls(b"".join(keys), starts, ends, value, array("d", map(itemgetter(2), rows)))

    def then(self, other: StackColumns) -> StackColumns:
        """These stacks, then other's (whose bytes and counts are zeros here:
        a comparison keeps them apart, see _Stacks)."""
        shift = len(self.data)
        zeros = array("d", bytes(8 * len(other.starts)))
        return StackColumns(
            self.data + other.data,
            self.starts + array("I", [s + shift for s in other.starts]),
            self.ends + array("I", [e + shift for e in other.ends]),
            self.value + zeros,
            self.count + zeros,
        )


def _group(cols: StackColumns, columns: list[array]) -> tuple[array, list[array]]:
    """Sort the keys and merge equal ones: (the first stack of each group, in
    key order; each column's running sums over the groups). In the native
    library when it is there (a report's 100,000 keys sort there in a tenth
    of the time), else here, to the same result."""
    try:
        from ..memory import _lib

        grouped = _lib.group_keys(cols.data, cols.starts, cols.ends, columns)
    except (ImportError, OSError):
        grouped = None
    if grouped is not None:
        return grouped
    keys = list(map(cols.data.__getitem__, map(slice, cols.starts, cols.ends)))
    n = len(keys)
    order = sorted(range(n), key=keys.__getitem__)
    keys = list(map(keys.__getitem__, order))
    # A run of equal keys (the same stack made in several epochs, an object
    # and its buffer, stacks equal once trimmed) is one group, whose running
    # sums are those at its run's end.
    ends = [*compress(range(1, n), map(ne, keys, islice(keys, 1, None))), n] if n else []
    firsts = array("I", [order[0], *map(order.__getitem__, islice(ends, len(ends) - 1))] if n else [])
    sums = []
    for column in columns:
        running = [0.0, *accumulate(map(column.__getitem__, order))]
        sums.append(array("d", [0.0, *map(running.__getitem__, ends)]))
    return firsts, sums


class _Stacks:
    """Stacks sorted by key, one per distinct key, with running sums: the
    bytes (count, base) of every stack in positions [lo, hi) is sums[hi] -
    sums[lo], and all stacks below one node of the tree are one such range.
    ``width`` sums what orders siblings and meets the threshold: bytes, plus
    the compared bytes in a comparison.

    Sums are of the floats the tracker estimates; a node's figure is the
    difference of two rounded running sums (see _columns),
    so a parent's figure is exactly its own plus its children's.
    """

    def __init__(self, stacks: Iterable[Stack] | StackColumns, compare: Iterable[Stack] | StackColumns | None):
        cols = stacks if isinstance(stacks, StackColumns) else StackColumns.from_rows(stacks)
        columns = [cols.value, cols.count]
        if compare is not None:
            other = compare if isinstance(compare, StackColumns) else StackColumns.from_rows(compare)
            base = array("d", bytes(8 * len(cols.starts))) + other.value
            cols = cols.then(other)
            columns = [cols.value, cols.count, base]
        self.cols = cols
        self.firsts, sums = _group(cols, columns)
        self.value, self.count = sums[0], sums[1]
        self.base = sums[2] if compare is not None else None
        self.width = self.value if self.base is None else array("d", map(add, self.value, self.base))

    @cached_property
    def keys(self) -> list[bytes]:
        """The distinct keys in order, as bytes (only the Python walk needs them)."""
        cols = self.cols
        spans = map(slice, map(cols.starts.__getitem__, self.firsts), map(cols.ends.__getitem__, self.firsts))
        return list(map(cols.data.__getitem__, spans))


def _emit_native(st: _Stacks, threshold: int, max_nodes: int) -> dict | None:
    """_emit and _columns in the native library (cyscope_flame_tree, the same
    walk): the node columns, or None (then the Python walk, to the same
    result). More than max_nodes nodes: the string TOO_MANY."""
    try:
        from ..memory import _lib
    except (ImportError, OSError):
        return None
    if _lib.lib() is None:
        return None
    sums = [st.value, st.count] if st.base is None else [st.value, st.count, st.base]
    cols = st.cols
    out = _lib.flame_tree(cols.data, cols.starts, cols.ends, st.firsts, sums, st.width, threshold, max_nodes)
    return TOO_MANY if out == _lib.TOO_MANY_NODES else out


TOO_MANY = "too many nodes"


def _common_frames(a: bytes, b: bytes, known: int) -> int:
    """How many leading frames two keys share, knowing they share `known`
    (bisection on slices, whose comparisons run in C)."""
    w = KEY_WIDTH
    hi = min(len(a), len(b)) // w
    lo = known
    if lo >= hi or a[lo * w : lo * w + w] != b[lo * w : lo * w + w]:
        return lo  # the usual case: they part at once
    lo += 1
    if a[: hi * w] == b[: hi * w]:
        return hi
    while lo < hi - 1:
        mid = (lo + hi) // 2
        if a[: mid * w] == b[: mid * w]:
            lo = mid
        else:
            hi = mid
    return lo


def _emit(st: _Stacks, threshold: int, max_nodes: int) -> dict | None:
    """Depth-first columns, widest sibling first, a parent's children under
    the threshold merged into one node. None: more than max_nodes nodes.

    Each node is a range [lo, hi) of the sorted stacks, whose keys share
    their first `depth` frames (the node's frame is the last of them). A
    chain of nodes with one child each (down to the common prefix of the
    range's first and last stack) is emitted at once; only where the
    stacks branch are children looked for, by bisection.
    """
    keys, width = st.keys, st.width
    w = KEY_WIDTH
    level: list[int] = [0]
    los: list[int] = [0]
    his: list[int] = [len(keys)]
    frames: list[int] = [-1]  # frame numbers; -1: the root; -2 - n: an "other" node merging n frames
    selfs: list[tuple[int, int]] = []  # (node, stack) where a stack ends at a node
    merged: list[tuple] = []  # (node, parent's own stack or -1, kept children) of "other" nodes
    plain: list[int] = []  # "other" nodes that are their parent's whole range
    todo: list = [(0, len(keys), 0)]  # (lo, hi, depth); lo < 0: an "other" node
    pop, push = todo.pop, todo.append
    n = 1
    while todo:
        lo, hi, depth = pop()
        if lo < 0:
            # An "other" node: the parent's range, less (in _columns) the
            # parent's own stack and its kept children, if any.
            parent_lo, parent_hi, own, kept, how_many = hi
            if own >= 0 or kept:
                merged.append((n, own, kept))
            else:
                plain.append(n)
            level.append(depth)
            los.append(parent_lo)
            his.append(parent_hi)
            frames.append(-2 - how_many)
            n += 1
            continue
        first = keys[lo]
        end = len(first) // w if hi - lo == 1 else _common_frames(first, keys[hi - 1], depth)
        if depth:  # the node and its chain (the root is already out)
            chain = end + 1 - depth
            level.extend(range(depth, end + 1))
            los.extend([lo] * chain)
            his.extend([hi] * chain)
            frames.extend(unpack_from(f">{chain}I", first, (depth - 1) * w))
            n += chain
            if n > max_nodes:
                return None
        elif end:  # a chain below the root
            push((lo, hi, 1))
            continue
        pos = lo
        own = -1
        if len(first) == end * w:  # the stack that ends here
            own = lo
            selfs.append((n - 1, lo))
            pos += 1
        if pos >= hi:
            continue
        size = (end + 1) * w
        if (
            hi - pos > 8
            and len(keys[pos]) == size
            and len(keys[hi - 1]) == size
            and set(map(len, keys[pos:hi])) == {size}
        ):
            # Every stack left ends one frame down: each is a child of its
            # own (the keys are distinct), and only the wide ones need a
            # tuple; the rest are merged without being looked at one by one.
            wide = [p for p in range(pos, hi) if width[p + 1] - width[p] >= threshold]
            if not wide and own < 0:
                # All of them merged: the one child is the "other" node
                # spanning this node's range, emitted here and now.
                level.append(end + 1)
                los.append(lo)
                his.append(hi)
                frames.append(-2 - (hi - pos))
                plain.append(n)
                n += 1
                continue
            if hi - pos - len(wide) < 2:
                wide = list(range(pos, hi))
            children = sorted(((width[p + 1] - width[p], p, p + 1) for p in wide), reverse=True)
            if len(wide) < hi - pos:
                push((-1, (lo, hi, own, children, hi - pos - len(wide)), end + 1))
            for _width, p, e in reversed(children):
                push((p, e, end + 1))
            continue
        if hi - pos <= 64:
            # A short range: read every stack's next frame and cut where it
            # changes (a few C-level passes beat a bisection per child).
            nxt = [k[size - w : size] for k in keys[pos:hi]]
            starts = [pos, *compress(range(pos + 1, hi), map(ne, nxt, islice(nxt, 1, None)))]
            children = [(width[e] - width[p], p, e) for p, e in zip(starts, [*starts[1:], hi])]
        else:
            children = []
            while pos < hi:
                stop = bisect_left(keys, keys[pos][:size] + _PAST, pos + 1, hi)
                children.append((width[stop] - width[pos], pos, stop))
                pos = stop
        if len(children) > 1:
            children.sort(reverse=True)
            if children[-2][0] < threshold:
                cut = len(children) - 2
                while cut > 0 and children[cut - 1][0] < threshold:
                    cut -= 1
                push((-1, (lo, hi, own, children, len(children) - cut), end + 1))
                del children[cut:]
        for _width, p, e in reversed(children):
            push((p, e, end + 1))
    return _columns(st, level, los, his, frames, selfs, merged, plain)


def _columns(st: _Stacks, level, los, his, frames, selfs, merged, plain) -> dict:
    """The payload's node columns, in whole bytes and allocations."""

    def figures(sums: list[float]) -> list[int]:
        column = [round(sums[hi]) - round(sums[lo]) for lo, hi in zip(los, his)]
        for i, own, kept in merged:
            # The parent's range (already in the column), less its own stack
            # and its kept children.
            rest = column[i] - sum(round(sums[e]) - round(sums[p]) for _w, p, e in kept)
            if own >= 0:
                rest -= round(sums[own + 1]) - round(sums[own])
            column[i] = rest
        return column

    value = st.value
    col_value = figures(value)
    col_self = [0] * len(level)
    for i, p in selfs:
        col_self[i] = round(value[p + 1]) - round(value[p])
    for i, *_rest in merged:
        col_self[i] = col_value[i]
    for i in plain:
        col_self[i] = col_value[i]
    return {
        "level": level,
        "value": col_value,
        "self": col_self,
        "count": figures(st.count),
        "base": figures(st.base) if st.base is not None else None,
        "frame": frames,
    }


def build(
    stacks: Iterable[Stack],
    frame_of: Callable[[int], Frame],
    *,
    title: str,
    view: str,
    threshold: int | None = None,
    inverted: bool = False,
    compare: Iterable[Stack] | None = None,
    compare_title: str | None = None,
    max_nodes: int = MAX_NODES,
    extra: dict | None = None,
) -> dict:
    """The payload of one flamegraph.

    stacks: (key, bytes, count) per stack, keys as memory._report.stack_key
    makes them (inverted ones for an inverted graph); frame_of: the frame of
    a number in a key; threshold: bytes under which a parent's children are
    merged (default: a 100,000th of the total); compare: the stacks of a
    report to compare with (they fill the ``base`` column).
    """
    with no_collection():
        st = _Stacks(stacks, compare)
        total = st.width[-1]
        if threshold is None:
            threshold = max(1, int(total * DEFAULT_THRESHOLD_SHARE))
        threshold = max(1, int(threshold))
        while True:
            cols = _emit_native(st, threshold, max_nodes)
            if cols is None:
                cols = _emit(st, threshold, max_nodes)
            if cols is not None and cols is not TOO_MANY:
                break
            threshold *= 4  # too many nodes: merge more
        payload = {
            "v": VERSION,
            "title": title,
            "view": view,
            "unit": "bytes",
            "inverted": bool(inverted),
            "threshold": threshold,
            "total": round(st.value[-1]),
        }
        payload.update(_tables(cols, frame_of, title))
        if compare is not None:
            payload["compare"] = {"title": compare_title or "baseline", "total": round(st.base[-1])}
            payload["nodes"]["base"] = cols["base"]
        if extra:
            for k, v in extra.items():
                payload.setdefault(k, v)
        return payload


def _tables(cols: dict, frame_of: Callable[[int], Frame], title: str) -> dict:
    strings: list[str] = [""]
    string_index: dict[str, int] = {"": 0}

    def s(text: str | None) -> int:
        if not text:
            return 0
        i = string_index.get(text)
        if i is None:
            i = string_index[text] = len(strings)
            strings.append(text)
        return i

    f_label: list[int] = []
    f_name: list[int] = []
    f_file: list[int] = []
    f_kind: list[int] = []
    f_cell: list[int] = []
    f_line: list[int] = []
    runs: list[list[int]] = []
    local: dict[int, int] = {}

    def add(label, name, file, kind, cell, line) -> int:
        f_label.append(s(label))
        f_name.append(s(name))
        f_file.append(s(file))
        f_kind.append(_KIND_INDEX.get(kind, _KIND_INDEX["native"]))
        f_cell.append(cell or 0)
        f_line.append(line or 0)
        return len(f_label) - 1

    def local_frame(number: int) -> int:
        i = local.get(number)
        if i is not None:
            return i
        if number == -1:
            i = add(title, title, None, "root", None, None)
        elif number <= -2:
            n = -2 - number
            label = f"{n} smaller frames"
            i = add(label, label, None, "other", None, None)
        else:
            fr = frame_of(number)
            i = add(fr.label, fr.name, fr.file, fr.kind, fr.cell, fr.line)
            if fr.run:
                members = [add(_member_label(m), m.name, m.file, "native", None, m.line) for m in fr.run]
                runs.append([i, *members])
        local[number] = i
        return i

    for number in dict.fromkeys(cols["frame"]):  # in the order nodes use them
        local_frame(number)
    node_frame = list(map(local.__getitem__, cols["frame"]))
    out = {
        "strings": strings,
        "kinds": list(KINDS),
        "frames": {
            "label": f_label,
            "name": f_name,
            "file": f_file,
            "kind": f_kind,
            "cell": f_cell,
            "line": f_line,
        },
        "nodes": {
            "level": cols["level"],
            "value": cols["value"],
            "self": cols["self"],
            "count": cols["count"],
            "frame": node_frame,
        },
    }
    if runs:
        out["runs"] = runs
    return out


def _member_label(fr) -> str:
    from ..memory._report import frame_label

    return frame_label(fr)


class PayloadError(ValueError):
    """A flamegraph payload that breaks a rule of the schema's description."""


def check(data: dict) -> None:
    """Raise PayloadError unless the payload's columns make a valid tree.

    What JSON Schema cannot say (protocol/flamegraph.schema.json checks the
    rest): equal column lengths, indexes in range, a nested set in
    depth-first order, and every value exactly its self plus its children's.
    """
    nodes, frames = data["nodes"], data["frames"]
    for table, columns in (("nodes", nodes), ("frames", frames)):
        for name, column in columns.items():
            if isinstance(column, list) and not all(type(x) is int and x >= 0 for x in column):
                raise PayloadError(f"{table}.{name}: an entry that is not a whole number >= 0")
    n = len(nodes["level"])
    if n == 0:
        raise PayloadError("nodes: no root")
    for name in ("value", "self", "count", "frame", *(["base"] if "base" in nodes else [])):
        if len(nodes[name]) != n:
            raise PayloadError(f"nodes.{name} has {len(nodes[name])} entries, nodes.level {n}")
    f = len(frames["label"])
    for name in ("name", "file", "kind", "cell", "line"):
        if len(frames[name]) != f:
            raise PayloadError(f"frames.{name} has {len(frames[name])} entries, frames.label {f}")
    strings = len(data["strings"])
    for name in ("label", "name", "file"):
        if any(i >= strings for i in frames[name]):
            raise PayloadError(f"frames.{name}: an index past the {strings} strings")
    if any(k >= len(data["kinds"]) for k in frames["kind"]):
        raise PayloadError("frames.kind: an index past the kinds")
    if any(i >= f for i in nodes["frame"]):
        raise PayloadError(f"nodes.frame: an index past the {f} frames")
    level, value, own = nodes["level"], nodes["value"], nodes["self"]
    if level[0] != 0:
        raise PayloadError("nodes.level[0] is not 0: the first node must be the root")
    children = [0] * n
    path: list[int] = []
    for i, lv in enumerate(level):
        if i and not 1 <= lv <= level[i - 1] + 1:
            raise PayloadError(f"nodes.level[{i}] = {lv} after {level[i - 1]}: not a depth-first nested set")
        del path[lv:]
        if lv:
            children[path[lv - 1]] += value[i]
        path.append(i)
    for i in range(n):
        if own[i] + children[i] != value[i]:
            raise PayloadError(f"nodes.value[{i}] = {value[i]} is not self {own[i]} plus its children's {children[i]}")
    if data["total"] != value[0]:
        raise PayloadError(f"total {data['total']} is not the root's value {value[0]}")
