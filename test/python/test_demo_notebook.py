"""The demo notebook (`npm run demo`) runs top to bottom in a real kernel.

Every code cell must succeed except those tagged `raises-exception` (the
nbconvert convention), which must fail; a few outputs are checked so the
demo shows what it says it shows.
"""

import json
import os
import sys

from jupyter_client.manager import start_new_kernel
from kernel_runner import run_code


def test_the_demo_notebook_runs(repo_root, tmp_path):
    notebook = json.loads((repo_root / "examples" / "demo.ipynb").read_text())

    env = dict(os.environ, PYTHONPATH=str(repo_root / "python-shim"), CYSCOPE_CACHE_DIR=str(tmp_path / "cache"))
    # "python3" runs on this test's own interpreter (jupyter_client swaps a
    # kernelspec's "python" for sys.executable): the venv's or Debian's.
    km, kc = start_new_kernel(kernel_name="python3", env=env, cwd=str(tmp_path))
    try:
        status, out = run_code(kc, "import os, sys; print(os.path.realpath(sys.executable))")
        assert out.strip() == os.path.realpath(sys.executable), out
        status, out = run_code(kc, "%load_ext cyscope")
        assert status == "ok", out
        outputs = []
        for cell in notebook["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            status, out = run_code(kc, source)
            expected = "error" if "raises-exception" in cell["metadata"].get("tags", []) else "ok"
            assert status == expected, f"{source!r} gave {status}:\n{out}"
            outputs.append(out)
        assert "line 3" in "".join(outputs), "the error demo should name its cell line"
        assert "'kind': 'cython'" in "".join(outputs) and "'line': 8" in "".join(outputs), outputs
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
