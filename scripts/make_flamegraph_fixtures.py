"""Write protocol/fixtures/flamegraph-*.json from the kernel's own payload builder.

Run: .venv/bin/python scripts/make_flamegraph_fixtures.py [--check]

The valid fixtures are what python-shim/cyscope/flamegraph/payload.py
sends for small, readable reports (a %%cython function under a cell, a
comparison, a collapsed native run, an inverted graph, merged small
frames), plus one of 100,000 nodes (gzipped) from a synthetic call tree.
The invalid ones (refused by the schema) and the malformed ones (refused by
the readers' checks of the tree, each with its reason) are hand-made
breakages of the first valid one; the future ones carry fields this version
does not know. --check only compares (the pytest suite
runs it), so the fixtures and the sender cannot drift apart.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import random
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "python-shim"))

from cyscope.flamegraph import payload as P  # noqa: E402
from cyscope.memory._report import ShownFrame  # noqa: E402
from cyscope.memory._symbols import Frame  # noqa: E402

FIXTURES = ROOT / "protocol" / "fixtures"
PYX = "/home/user/.cache/cyscope/cython/_cyscope_magic_5f3a.pyx"
BUDGET = 56500  # leaves of the synthetic tree: about 100,000 nodes
CELL4 = "/tmp/ipykernel_4242/2871264531.py"


class Frames:
    """Numbers frames in the order they are first used (like the kernel)."""

    def __init__(self):
        self.frames: list = []
        self.index: dict = {}

    def key(self, *frames) -> bytes:
        out = []
        for fr in frames:
            if fr not in self.index:
                self.index[fr] = len(self.frames)
                self.frames.append(fr)
            out.append(self.index[fr].to_bytes(P.KEY_WIDTH, "big"))
        return b"".join(out)


def cell(n: int, line: int) -> ShownFrame:
    return ShownFrame(f"cell [{n}] line {line}", "<module>", CELL4, line, "cell", n)


def py(name: str, n: int, line: int) -> ShownFrame:
    return ShownFrame(f"{name} · cell [{n}] line {line}", name, CELL4, line, "python", n)


def cy(name: str, n: int, line: int) -> ShownFrame:
    return ShownFrame(f"{name} · cell [{n}] line {line}", name, PYX, line, "cython", n)


def lib(name: str, so: str) -> ShownFrame:
    return ShownFrame(f"{name} · {so.rsplit('/', 1)[-1].split('.so')[0]}", name, so, None, "native", None)


EXTRA = {
    "totals": {
        "peak_bytes": 106954752,
        "leaked_bytes": 104857600,
        "allocated_bytes": 107000000,
        "allocations": 1130,
        "net_bytes": 104900000,
        "duration_ms": 412.5,
    },
    "exact": False,
    "native": False,
    "trimmed": True,
    "cell": 4,
    "cell_id": "7c0f9a2e-memory",
    "cells": {"3": "5b1e0c44-cython", "4": "7c0f9a2e-memory"},
}


def cell_payload() -> dict:
    f = Frames()
    stacks = [
        (f.key(cell(4, 2), cy("grow", 3, 9)), 104857600, 100),
        (f.key(cell(4, 3), py("<listcomp>", 4, 3)), 2000000, 1000),
        (f.key(cell(4, 3)), 97152, 30),
    ]
    return P.build(stacks, f.frames.__getitem__, title="cell [4] · peak", view="peak", extra=EXTRA)


def compare_payload() -> dict:
    f = Frames()
    now = [
        (f.key(cell(7, 2), cy("grow", 3, 9)), 104857600, 100),
        (f.key(cell(7, 3), py("<listcomp>", 7, 3)), 1000000, 500),
    ]
    before = [
        (f.key(cell(7, 2), cy("grow", 3, 9)), 52428800, 50),
        (f.key(cell(7, 3), py("<listcomp>", 7, 3)), 4000000, 2000),
        (f.key(cell(7, 4)), 300000, 3),
    ]
    extra = dict(EXTRA, cell=7, cells={"3": "5b1e0c44-cython", "7": "7c0f9a2e-memory"})
    data = P.build(
        now,
        f.frames.__getitem__,
        title="cell [7] · peak",
        view="peak",
        compare=before,
        compare_title="cell [4] · peak",
        extra=extra,
    )
    data["compare"]["cell"] = 4
    return data


def native_payload() -> dict:
    f = Frames()
    members = (
        Frame("PyObject_Call", "Objects/call.c", 317, "native", obj="/usr/lib/libpython3.11.so.1.0"),
        Frame("type_call", "Objects/typeobject.c", 1091, "native", obj="/usr/lib/libpython3.11.so.1.0"),
        Frame("_PyObject_Malloc", "Objects/obmalloc.c", 2003, "native", obj="/usr/lib/libpython3.11.so.1.0"),
    )
    run = ShownFrame(
        "libpython3.11: 3 frames",
        "libpython3.11: 3 frames",
        "/usr/lib/libpython3.11.so.1.0",
        None,
        "native",
        None,
        members,
    )
    new = ShownFrame(
        "operator new(unsigned long) · libstdc++",
        "operator new(unsigned long)",
        "/usr/lib/x86_64-linux-gnu/libstdc++.so.6",
        None,
        "native",
        None,
    )
    stacks = [
        (f.key(cell(5, 2), cy("grow", 3, 9), new), 8388608, 24),
        (f.key(cell(5, 2), cy("make", 3, 14), run), 1000000, 1000),
    ]
    extra = dict(EXTRA, native=True, exact=True, cell=5, cells={"3": "5b1e0c44-cython"})
    return P.build(stacks, f.frames.__getitem__, title="cell [5] · leaks", view="leaks", extra=extra)


def inverted_payload() -> dict:
    f = Frames()
    stacks = [
        (f.key(cy("grow", 3, 9), cell(6, 2)), 4096000, 4),
        (f.key(cy("grow", 3, 9), py("fill", 6, 5), cell(6, 8)), 1024000, 1),
    ]
    return P.build(
        stacks, f.frames.__getitem__, title="cell [6] · allocated", view="allocated", inverted=True, extra={"cell": 6}
    )


def merged_payload() -> dict:
    f = Frames()
    stacks = [(f.key(cell(8, 2), py("big", 8, 4)), 900000, 9)]
    stacks += [(f.key(cell(8, 2), py(f"small_{i}", 8, 10 + i)), 1000 + i, 1) for i in range(12)]
    return P.build(stacks, f.frames.__getitem__, title="track · leaks", view="leaks", threshold=50000)


def synthetic_100k() -> dict:
    """A call tree of 5,000 functions whose payload holds 100,000 nodes."""
    rnd = random.Random(7)
    f = Frames()
    names = [py(f"func_{i}", 9, 1 + i % 400) for i in range(5000)]
    stacks = []

    def grow(prefix: tuple, budget: int) -> None:
        if budget <= 1 or len(prefix) >= 40:
            stacks.append((f.key(*prefix), int(rnd.paretovariate(1.1) * 4096 * budget), rnd.randint(1, 50)))
            return
        k = min(budget, rnd.choice((1, 1, 2, 2, 3, 4, 8)))
        cuts = sorted(rnd.sample(range(1, budget), k - 1)) if k > 1 else []
        for part, fr in zip((b - a for a, b in zip([0, *cuts], [*cuts, budget])), rnd.sample(names, k)):
            grow((*prefix, fr), part)

    grow((cell(9, 2),), BUDGET)
    data = P.build(stacks, f.frames.__getitem__, title="cell [9] · peak", view="peak", threshold=1)
    assert 99_000 <= len(data["nodes"]["level"]) <= 100_000, len(data["nodes"]["level"])
    return data


def breakages(valid: dict) -> list[tuple[str, object, bool]]:
    """(what is wrong, payload, whether the schema itself refuses it) for
    breakages of a valid payload; readers refuse every one with a message."""
    cases = []

    def case(why: str, by_schema: bool, change) -> None:
        data = copy.deepcopy(valid)
        change(data)
        cases.append((why, data, by_schema))

    cases.append(("not a JSON object", [copy.deepcopy(valid)], True))
    case("no version", True, lambda d: d.pop("v"))
    case("a later version", True, lambda d: d.update(v=2))
    case("no nodes", True, lambda d: d.pop("nodes"))
    case("no kinds", True, lambda d: d.pop("kinds"))
    case("nodes.level is not a list", True, lambda d: d["nodes"].update(level="0,1,2"))
    case("a negative value", True, lambda d: d["nodes"]["value"].__setitem__(1, -5))
    case("a value that is not an integer", True, lambda d: d["nodes"]["value"].__setitem__(1, 1.5))
    case("a string that is not a string", True, lambda d: d["strings"].__setitem__(1, 7))
    case("an unknown view", True, lambda d: d.update(view="gc"))
    case("columns of different lengths", False, lambda d: d["nodes"]["self"].pop())
    case("frame columns of different lengths", False, lambda d: d["frames"]["line"].pop())
    case("the first node is not the root", False, lambda d: d["nodes"]["level"].__setitem__(0, 1))
    case("a second root", False, lambda d: d["nodes"]["level"].__setitem__(len(d["nodes"]["level"]) - 1, 0))
    case("a level that skips a depth", False, lambda d: d["nodes"]["level"].__setitem__(2, 3))
    case(
        "a value that is not self plus children",
        False,
        lambda d: d["nodes"]["value"].__setitem__(1, d["nodes"]["value"][1] + 1),
    )
    case("a total that is not the root's value", False, lambda d: d.update(total=d["total"] + 1))
    case("a frame index past the frames", False, lambda d: d["nodes"]["frame"].__setitem__(1, 999))
    case("a string index past the strings", False, lambda d: d["frames"]["label"].__setitem__(0, 999))
    case("a kind index past the kinds", False, lambda d: d["frames"]["kind"].__setitem__(0, 99))
    case("a comparison column of another length", False, lambda d: d["nodes"].update(base=[1, 2]))
    case("no nodes at all", False, lambda d: d["nodes"].update(level=[], value=[], self=[], count=[], frame=[]))
    return cases


def invalid(valid: dict) -> list:
    """What the schema itself refuses (protocol/README.md: <name>-invalid.json)."""
    return [data for _why, data, by_schema in breakages(valid) if by_schema]


def malformed(valid: dict) -> list[dict]:
    """What only the readers' tree checks refuse, each with the reason."""
    return [{"why": why, "payload": data} for why, data, by_schema in breakages(valid) if not by_schema]


def future(valid: list[dict]) -> list[dict]:
    """Valid payloads with fields this version does not know, everywhere."""
    out = []
    for data in valid[:3]:
        data = copy.deepcopy(data)
        data["palette"] = {"cell": "#123456"}
        data["nodes"]["self_count"] = list(data["nodes"]["count"])
        data["frames"]["module"] = [0] * len(data["frames"]["label"])
        data.setdefault("totals", {})["gc_bytes"] = 0
        if "compare" in data:
            data["compare"]["when"] = "before the fix"
        out.append(data)
    return out


def write(path: Path, data, check: bool) -> bool:
    """Write (then let prettier format, as `npm run lint` wants), or compare the data."""
    if check:
        return path.exists() and json.loads(path.read_text()) == data
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    subprocess.run(["npx", "prettier", "--write", str(path)], cwd=ROOT, check=True, capture_output=True)
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare with the files (exit 1 if they differ)")
    args = parser.parse_args()
    valid = [cell_payload(), compare_payload(), native_payload(), inverted_payload(), merged_payload()]
    for data in valid:
        P.check(data)
    ok = write(FIXTURES / "flamegraph-valid.json", valid, args.check)
    ok &= write(FIXTURES / "flamegraph-invalid.json", invalid(valid[0]), args.check)
    ok &= write(FIXTURES / "flamegraph-malformed.json", malformed(valid[0]), args.check)
    ok &= write(FIXTURES / "flamegraph-future.json", future(valid), args.check)
    big = synthetic_100k()
    P.check(big)
    big_text = json.dumps(big, separators=(",", ":"))
    big_path = FIXTURES / "flamegraph-100k-nodes.json.gz"
    if args.check:
        ok &= big_path.exists() and gzip.decompress(big_path.read_bytes()).decode() == big_text
    else:
        big_path.write_bytes(gzip.compress(big_text.encode(), mtime=0))
    if not ok:
        sys.exit("protocol/fixtures/flamegraph-* differ from what the payload builder makes: run this script")
    print(
        f"flamegraph fixtures {'match' if args.check else 'written'} ({len(big['nodes']['level']):,}-node one: "
        f"{len(big_text) / 1e6:.2f} MB of JSON)"
    )


if __name__ == "__main__":
    main()
