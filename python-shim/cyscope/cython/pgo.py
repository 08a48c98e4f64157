"""``--pgo``: profile-guided optimisation with gcc.

An instrumented copy of the module is built as ``_pgo_NAME`` and imported once in a
child Python process: its module code is the cell, whose ``if "_pgo_" in __name__:``
block is the training run. gcc's instrumented code writes its counters (``.gcda``
files, in ``<build folder>/pgo``) when the process exits, which a module imported in
the kernel itself would only do when the kernel exits; the real build then reads them.
"""

from __future__ import annotations

import copy
import importlib.machinery
import os
import shutil
import signal
import subprocess
import sys

from .compiler import build_ext_command

EXT_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

FLAGS = {
    "gen": ["-fprofile-generate", "-fprofile-dir={dir}"],
    "use": ["-fprofile-use", "-fprofile-correction", "-fprofile-dir={dir}"],
}

# The child imports the instrumented module by path, under its own name, and exits:
# gcc's exit handler writes the profile.
_TRAINER = """\
import importlib.util, sys
name, path = sys.argv[1], sys.argv[2]
spec = importlib.util.spec_from_file_location(name, path)
module = importlib.util.module_from_spec(spec)
sys.modules[name] = module
spec.loader.exec_module(module)
"""


def profile_dir(build_dir: str) -> str:
    return os.path.join(build_dir, "pgo")


def use_flags(build_dir: str) -> list[str]:
    return [f.format(dir=profile_dir(build_dir)) for f in FLAGS["use"]]


def train(ext, name: str, build_dir: str, build_temp: str) -> str | None:
    """Build ``_pgo_NAME`` instrumented and run it once in a child process.

    Returns None when a profile was written, else why not (the build then goes on
    without one). Compiler errors of the instrumented build raise, as for any build.
    """
    pgo_name = "_pgo_" + name
    wrapper = os.path.join(build_dir, pgo_name + ".c")
    with open(wrapper, "w", encoding="utf-8") as f:
        f.write(
            '#include "Python.h"\n'
            f"extern PyMODINIT_FUNC PyInit_{name}(void);\n"
            f"PyMODINIT_FUNC PyInit_{pgo_name}(void);\n"
            f"PyMODINIT_FUNC PyInit_{pgo_name}(void) {{ return PyInit_{name}(); }}\n"
        )
    gen = copy.copy(ext)
    gen.sources = [*list(ext.sources), wrapper]
    gen.name = pgo_name
    flags = [f.format(dir=profile_dir(build_dir)) for f in FLAGS["gen"]]
    build_ext_command(gen, build_dir, build_temp, flags).run()

    # The child sees what the kernel can import, and runs where the kernel runs (the
    # training code may read files relative to the notebook).
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    module_path = os.path.join(build_dir, pgo_name + EXT_SUFFIX)
    sys.stdout.flush()
    sys.stderr.flush()
    status = subprocess.run(
        [sys.executable, "-c", _TRAINER, pgo_name, module_path], env=env, stdin=subprocess.DEVNULL, check=False
    ).returncode
    if status != 0:
        why = _describe_status(status)
        return f"--pgo: the training run failed ({why}; its output is in the compiler output); built without a profile"
    if not _profiles(profile_dir(build_dir)):
        return "--pgo: the training run wrote no profile; built without one"
    return None


def _profiles(folder: str) -> list[str]:
    # os.walk, not glob: the build folder's name starts with a dot, which glob's ** skips.
    return [os.path.join(d, f) for d, _, files in os.walk(folder) for f in files if f.endswith(".gcda")]


def _describe_status(status: int) -> str:
    if status < 0:
        try:
            return f"killed by {signal.Signals(-status).name}"
        except ValueError:
            return f"killed by signal {-status}"
    return f"exit status {status}"


def remove_leftovers(build_dir: str) -> None:
    """The instrumented module and the profile are not part of the published build."""
    for leftover in os.listdir(build_dir):
        if leftover.startswith("_pgo_"):
            os.unlink(os.path.join(build_dir, leftover))
    shutil.rmtree(profile_dir(build_dir), ignore_errors=True)
