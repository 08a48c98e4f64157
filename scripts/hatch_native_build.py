"""Hatch build hook: build libcyscope.so with CMake and ship it in the wheel.

The library is loaded with ctypes, so it does not depend on the Python ABI;
the wheel is tagged py3-none-<platform> accordingly.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


class NativeBuildHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version, build_data):
        if self.target_name != "wheel":
            return
        root = Path(self.root)
        build_dir = root / "native" / "build"
        subprocess.run(
            ["cmake", "-S", str(root / "native"), "-B", str(build_dir), "-DCMAKE_BUILD_TYPE=RelWithDebInfo"],
            check=True,
        )
        subprocess.run(["cmake", "--build", str(build_dir), "--target", "cyscope", "-j2"], check=True)
        staged = root / "python-shim" / "cyscope" / "_native"
        staged.mkdir(mode=0o755, exist_ok=True)
        # Copy then rename: a running process (the test suite itself) may have
        # the old library mapped; rewriting it in place would crash it.
        tmp = staged / ".libcyscope.so.tmp"
        shutil.copy2(build_dir / "libcyscope.so", tmp)
        os.replace(tmp, staged / "libcyscope.so")
        build_data["force_include"][str(staged / "libcyscope.so")] = "cyscope/_native/libcyscope.so"
        build_data["pure_python"] = False
        platform_tag = sysconfig.get_platform().replace("-", "_").replace(".", "_")
        build_data["tag"] = f"py3-none-{platform_tag}"
