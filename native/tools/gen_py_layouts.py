"""Generate python-shim/cyscope/memory/py_layouts.json from interpreters' headers.

Run: python native/tools/gen_py_layouts.py [PYTHON ...]
(default: every interpreter of the test matrix found on this machine)

For each interpreter, py_layout.c is compiled against that interpreter's
own headers (`sysconfig` include dir, internal headers included) and run;
its offsets are merged into the JSON file under "major.minor". Patch
releases of one minor version must agree, or this fails: a layout that
changed inside a minor version needs a key of its own. Versions not given
keep their entries. test_memory_frames.py checks the file against the
headers of whichever interpreter runs the tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
OUT = ROOT / "python-shim" / "cyscope" / "memory" / "py_layouts.json"
DEFAULT = [
    str(ROOT / ".venv" / "bin" / "python"),
    "/usr/bin/python3",
    str(Path.home() / ".pyenv/versions/3.12.1/bin/python3.12"),
    str(Path.home() / ".pyenv/versions/3.13.0/bin/python3.13"),
]


def layout_of(python: str) -> dict:
    """The offsets of `python`, from its headers (raises with the reason)."""
    info = json.loads(
        subprocess.run(
            [
                python,
                "-c",
                "import json, sys, sysconfig; print(json.dumps([sysconfig.get_paths()['include'], "
                "'%d.%d' % sys.version_info[:2], hasattr(sys, 'gettotalrefcount')]))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    include, minor, debug = info
    if debug:
        raise RuntimeError(f"{python} is a debug build (other layouts)")
    if not (Path(include) / "internal" / "pycore_frame.h").exists():
        raise RuntimeError(f"{python}: no internal headers in {include} (install its -dev package)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = Path(tmp) / "py_layout"
        cc = os.environ.get("CC", "gcc")
        subprocess.run(
            [cc, f"-I{include}", f"-I{include}/internal", str(HERE / "py_layout.c"), "-o", str(exe)],
            check=True,
            capture_output=True,
            text=True,
        )
        layout = json.loads(subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout)
    layout["minor"] = minor
    return layout


def _format(table: dict) -> str:
    """JSON laid out as prettier lays it out (npm run lint checks the file)."""
    text = json.dumps(table, indent=2) + "\n"
    # prettier keeps a short array of strings on one line
    for entry in table.values():
        text = text.replace(json.dumps(entry["from"], indent=2).replace("\n", "\n    "), json.dumps(entry["from"]))
    return text


def main(argv: list[str]) -> int:
    pythons = argv or [p for p in DEFAULT if Path(p).exists()]
    table = json.loads(OUT.read_text()) if OUT.exists() else {}
    seen: dict[str, dict] = {}
    for python in pythons:
        layout = layout_of(python)
        minor = layout.pop("minor")
        version = layout.pop("python")
        if minor in seen and seen[minor]["offsets"] != layout:
            raise SystemExit(f"{version} and {seen[minor]['from']} differ: give them keys of their own")
        entry = seen.setdefault(minor, {"from": [], "offsets": layout})
        entry["from"] = sorted(set(entry["from"]) | {version})
        print(f"{python}: Python {version}")
    for minor, entry in seen.items():
        table[minor] = entry
    OUT.write_text(_format(dict(sorted(table.items()))))
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
