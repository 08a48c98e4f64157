"""The flamegraph payload builder, its fixtures, and the HTML and text fallbacks."""

from __future__ import annotations

import gzip
import json
import random
import sys

import pytest
from cyscope.flamegraph import payload as P
from cyscope.flamegraph.svg import svg_html
from cyscope.flamegraph.text import format_bytes, summary
from cyscope.memory._report import ShownFrame
from flamegraph_helpers import ROOT, children, label, validate

sys.path.insert(0, str(ROOT / "scripts"))
import make_flamegraph_fixtures as fixtures

FIXTURES = ROOT / "protocol" / "fixtures"


def _fixture(name: str):
    return json.loads((FIXTURES / name).read_text())


def frame(name: str, cell=None, kind="python") -> ShownFrame:
    return ShownFrame(name, name, None, 1, kind, cell)


class Frames:
    def __init__(self):
        self.list: list = []
        self.index: dict = {}

    def key(self, *names: str) -> bytes:
        out = []
        for n in names:
            fr = frame(n)
            if fr not in self.index:
                self.index[fr] = len(self.list)
                self.list.append(fr)
            out.append(self.index[fr].to_bytes(P.KEY_WIDTH, "big"))
        return b"".join(out)


def build(stacks, **options) -> dict:
    f = Frames()
    keyed = [(f.key(*names), nbytes, count) for names, nbytes, count in stacks]
    compare = options.pop("compare", None)
    if compare is not None:
        compare = [(f.key(*names), nbytes, count) for names, nbytes, count in compare]
    return validate(P.build(keyed, f.list.__getitem__, title="t", view="peak", compare=compare, **options))


def test_the_fixtures_are_what_the_builder_sends():
    # Same check as `scripts/make_flamegraph_fixtures.py --check`.
    valid = [
        fixtures.cell_payload(),
        fixtures.compare_payload(),
        fixtures.native_payload(),
        fixtures.inverted_payload(),
        fixtures.merged_payload(),
    ]
    assert _fixture("flamegraph-valid.json") == valid
    assert _fixture("flamegraph-invalid.json") == fixtures.invalid(valid[0])
    assert _fixture("flamegraph-malformed.json") == fixtures.malformed(valid[0])
    assert _fixture("flamegraph-future.json") == fixtures.future(valid)


def test_valid_fixtures_pass_and_malformed_ones_fail():
    for data in _fixture("flamegraph-valid.json") + _fixture("flamegraph-future.json"):
        validate(data)
    # (The invalid ones fail the schema: test_protocol.py checks every schema's.)
    for case in _fixture("flamegraph-malformed.json"):
        with pytest.raises(P.PayloadError):
            P.check(case["payload"])


def test_the_100k_node_fixture_is_valid_and_under_3_mb():
    raw = gzip.decompress((FIXTURES / "flamegraph-100k-nodes.json.gz").read_bytes())
    data = validate(json.loads(raw))
    assert 99_000 <= len(data["nodes"]["level"]) <= 100_000
    assert len(raw) < 3_000_000, len(raw)


def test_values_are_exact_whole_bytes():
    rnd = random.Random(3)
    stacks = [
        (
            (f"a{rnd.randrange(3)}", f"b{rnd.randrange(5)}", f"c{rnd.randrange(9)}")[: rnd.randint(1, 3)],
            rnd.random() * 1e4,
            rnd.random() * 3,
        )
        for _ in range(500)
    ]
    data = build(stacks, threshold=1)  # validate() checks value == self + children everywhere
    assert data["total"] == data["nodes"]["value"][0]
    assert abs(data["total"] - sum(b for _, b, _ in stacks)) <= 1
    assert all(isinstance(v, int) for v in data["nodes"]["value"] + data["nodes"]["count"])


def test_siblings_come_largest_first_and_small_ones_merge():
    stacks = [(("cell", "big"), 900_000, 9)] + [(("cell", f"small{i}"), 1000 + i, 1) for i in range(12)]
    stacks.append((("cell", "medium"), 60_000, 2))
    data = build(stacks, threshold=50_000)
    (cell,) = children(data, 0)
    kids = children(data, cell)
    assert [label(data, k) for k in kids] == ["big", "medium", "12 smaller frames"]
    other = kids[-1]
    assert data["nodes"]["value"][other] == sum(1000 + i for i in range(12))
    assert data["nodes"]["self"][other] == data["nodes"]["value"][other]
    assert data["nodes"]["count"][other] == 12
    assert data["kinds"][data["frames"]["kind"][data["nodes"]["frame"][other]]] == "other"
    # A single small child is kept: merging it would hide it for nothing.
    data = build([(("cell", "big"), 900_000, 1), (("cell", "tiny"), 10, 1)], threshold=50_000)
    assert [label(data, k) for k in children(data, children(data, 0)[0])] == ["big", "tiny"]


def test_the_node_count_is_capped_by_raising_the_threshold():
    rnd = random.Random(5)
    stacks = [((f"f{i % 50}", f"g{i % 700}", f"h{i}"), rnd.randint(1, 10_000), 1) for i in range(20_000)]
    full = build(stacks, threshold=1)
    capped = build(stacks, threshold=1, max_nodes=2_000)
    assert len(full["nodes"]["level"]) > 20_000
    assert len(capped["nodes"]["level"]) <= 2_000 and capped["threshold"] > 1
    assert capped["total"] == full["total"]


def test_a_comparison_fills_the_base_column():
    now = [(("cell", "grow"), 100, 1), (("cell", "kept"), 10, 1)]
    before = [(("cell", "grow"), 40, 1), (("cell", "gone"), 30, 1)]
    data = build(now, compare=before, threshold=1)
    base = data["nodes"]["base"]
    by_label = {label(data, i): (data["nodes"]["value"][i], base[i]) for i in range(len(base))}
    assert by_label["grow"] == (100, 40)
    assert by_label["kept"] == (10, 0)
    assert by_label["gone"] == (0, 30)  # only in the baseline: there, with no width
    assert data["compare"]["total"] == 70 and data["total"] == 110


def test_the_svg_fallback_is_self_contained():
    for data in _fixture("flamegraph-valid.json"):
        html = svg_html(data)
        assert "<svg" in html and "<title>" in html
        assert "<script" not in html.lower()
        assert "href" not in html and "src=" not in html and "url(" not in html
        assert "<listcomp>" not in html  # labels are escaped
    html = svg_html(_fixture("flamegraph-valid.json")[0])
    assert "grow · cell [3] line 9" in html and "100.0 MiB" in html
    big = json.loads(gzip.decompress((FIXTURES / "flamegraph-100k-nodes.json.gz").read_bytes()))
    assert html.count("<rect") < 50 and svg_html(big).count("<rect") <= 6_100


def test_the_text_summary_names_the_top_lines():
    text = summary(_fixture("flamegraph-valid.json")[0])
    lines = text.splitlines()
    assert lines[0] == "cyscope flamegraph: cell [4] · peak: 102.0 MiB"
    assert "100.0 MiB" in lines[3] and "grow · cell [3] line 9" in lines[3]
    assert format_bytes(1536) == "1.5 KiB" and format_bytes(12) == "12 B"


def test_nbconvert_html_export_shows_the_svg(tmp_path):
    # The venv's nbconvert (setup.sh installs it; Debian's interpreter has none),
    # run on a notebook whose output carries the bundle %%memory displays.
    import subprocess

    exe = ROOT / ".venv" / "bin" / "jupyter-nbconvert"
    assert exe.exists(), f"{exe} is missing: run scripts/setup.sh"
    data = _fixture("flamegraph-valid.json")[0]
    output = {
        "output_type": "display_data",
        "metadata": {},
        "data": {P.MIME: data, "text/html": svg_html(data), "text/plain": summary(data)},
    }
    cell = {
        "cell_type": "code",
        "execution_count": 4,
        "id": "c",
        "metadata": {},
        "source": "%%memory",
        "outputs": [output],
    }
    notebook = {"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    path = tmp_path / "memory.ipynb"
    path.write_text(json.dumps(notebook))
    done = subprocess.run(
        [str(exe), "--to", "html", "--stdout", str(path)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    html = done.stdout
    assert 'class="cyscope-flamegraph-svg"' in html and "grow · cell [3] line 9" in html
    assert "<title>grow · cell [3] line 9" in html


def test_the_native_library_builds_the_payload_the_python_code_builds(monkeypatch):
    """The keys' grouping and the tree's walk run in the native library;
    the Python versions are the reference: same payload, byte for byte."""
    from array import array

    from cyscope.memory import _lib

    # The native versions must be there (else both sides below are Python's).
    assert _lib.group_keys(b"ab", array("I", [0, 1]), array("I", [1, 2]), []) is not None, _lib.reason()
    assert P._emit_native(P._Stacks([(b"\0\0\0\1", 5.0, 1.0)], None), 1, 10) is not None
    rnd = random.Random(11)
    # Deep and shallow stacks, stacks that end where others go on, a wide
    # fan-out of one-frame-down children (the fast path), small siblings.
    names = ("cell", "f", "g", "h")
    stacks = [
        (tuple(rnd.choice(names) for _ in range(rnd.randint(0, 4))), rnd.random() * 1e5, rnd.random() * 4)
        for _ in range(3000)
    ]
    stacks += [(("cell", "leaf", f"x{i}"), rnd.random() * 50, 1.0) for i in range(40)]
    stacks += [(("cell", "leaf"), 7.0, 1.0)] + [(("cell", "wide", f"y{i}"), 1e4 + i, 1.0) for i in range(12)]
    before = [(names, rnd.random() * 1e5, 1.0) for names, _b, _c in stacks[:500]]
    # Equal widths (siblings ordered by position then) and widths equal to the threshold.
    even = [
        ((*(rnd.choice(names) for _ in range(rnd.randint(1, 3))), f"z{i}"), rnd.choice((100, 200, 300)), 1)
        for i in range(300)
    ]
    even += [(("cell", "even", f"w{i}"), 200, 1) for i in range(20)]

    def builds():
        return [
            build(stacks, threshold=1),
            build(stacks, threshold=5_000),
            build(stacks, threshold=50_000, compare=before),
            build(stacks, inverted=True),
            build(stacks, threshold=1, max_nodes=300),
            build(even, threshold=200),
            build(even, threshold=100_000),
        ]

    native = builds()
    monkeypatch.setattr(_lib, "group_keys", lambda *args: None)
    monkeypatch.setattr(P, "_emit_native", lambda *args: None)
    python = builds()
    assert native == python
    assert len(native[0]["nodes"]["level"]) > 100 and native[4]["threshold"] > 1
