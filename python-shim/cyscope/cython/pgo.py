"""``--pgo``: profile-guided optimisation with gcc.

An instrumented copy of the module is built as ``_pgo_NAME`` and imported once (its
module code is the cell, whose ``if "_pgo_" in __name__:`` block is the training run);
the real build then reads the profile from ``<build folder>/pgo``.
"""

from __future__ import annotations

import copy
import importlib.machinery
import importlib.util
import os
import sys

from .compiler import build_ext_command

EXT_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

FLAGS = {
    "gen": ["-fprofile-generate", "-fprofile-dir={dir}"],
    "use": ["-fprofile-use", "-fprofile-correction", "-fprofile-dir={dir}"],
}


def profile_dir(build_dir: str) -> str:
    return os.path.join(build_dir, "pgo")


def use_flags(build_dir: str) -> list[str]:
    return [f.format(dir=profile_dir(build_dir)) for f in FLAGS["use"]]


def train(ext, name: str, build_dir: str, build_temp: str) -> None:
    """Build ``_pgo_NAME`` instrumented into ``build_dir`` and import it once (the training run)."""
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
    spec = importlib.util.spec_from_file_location(pgo_name, os.path.join(build_dir, pgo_name + EXT_SUFFIX))
    module = importlib.util.module_from_spec(spec)
    sys.modules[pgo_name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        sys.modules.pop(pgo_name, None)


def remove_leftovers(build_dir: str) -> None:
    """The instrumented module and the profile are not part of the published build."""
    for leftover in os.listdir(build_dir):
        if leftover.startswith("_pgo_"):
            os.unlink(os.path.join(build_dir, leftover))
    import shutil

    shutil.rmtree(profile_dir(build_dir), ignore_errors=True)
