"""The C/C++ compiler and linker, driven through distutils' ``build_ext`` as Cython's magic does.

``build_ext`` picks the compiler, the flags and the module suffix exactly as a
``setup.py`` would on this interpreter (sysconfig, ``CC``/``CFLAGS``/``LDSHARED``...),
which is what users of ``%%cython`` expect.
"""

from __future__ import annotations

import copy
import os
import shlex
import shutil
import sys
import sysconfig
import warnings

_CONFIG_VARS = ("CC", "CXX", "CFLAGS", "CCSHARED", "LDSHARED", "LDCXXSHARED", "LDFLAGS", "OPT", "BASECFLAGS")
_ENV_VARS = ("CC", "CXX", "CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS", "LDSHARED", "ARCHFLAGS", "OPT")


def compiler_fingerprint() -> list:
    """The compiler settings ``build_ext`` will use (sysconfig's and the environment's), for cache keys."""
    cv = sysconfig.get_config_vars()
    return [[k, cv.get(k)] for k in _CONFIG_VARS] + [[k, os.environ.get(k)] for k in _ENV_VARS]


class MissingBuildTool(RuntimeError):
    """A tool ``%%cython`` needs is not installed: the message names it and how
    to install it, and IPython shows that message alone, not a traceback."""

    def _render_traceback_(self):
        return [f"{type(self).__name__}: {self}"]


def distutils():
    """``(Distribution, Extension, build_ext, CCompilerError, DistutilsError, log)``, from distutils or setuptools."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from distutils import log
            from distutils.command.build_ext import build_ext
            from distutils.core import Distribution, Extension
            from distutils.errors import CCompilerError, DistutilsError
        except ImportError:  # Python >= 3.12 without setuptools' distutils shim
            try:
                from setuptools import Distribution, Extension
                from setuptools._distutils import log
                from setuptools._distutils.errors import CCompilerError, DistutilsError
                from setuptools.command.build_ext import build_ext
            except ImportError:
                raise MissingBuildTool(
                    "setuptools is not installed in this kernel's environment, and %%cython compiles "
                    "through it (Python 3.12 and later have no distutils). Install it: "
                    f"{shlex.quote(sys.executable)} -m pip install setuptools"
                ) from None
    return Distribution, Extension, build_ext, CCompilerError, DistutilsError, log


def require_compiler(cplus: bool = False) -> None:
    """The C (or C++) compiler the build would run, or MissingBuildTool naming it."""
    var = "CXX" if cplus else "CC"
    command = os.environ.get(var) or sysconfig.get_config_var(var) or ("g++" if cplus else "gcc")
    words = shlex.split(command)
    exe = words[0] if words else command
    if shutil.which(exe) is None:
        kind = "C++" if cplus else "C"
        raise MissingBuildTool(
            f"the {kind} compiler {exe!r} is not installed (%%cython runs it; it comes from ${var} or "
            f"this Python's build settings). Install one: apt-get install {'g++' if cplus else 'gcc'} "
            f"(Debian, Ubuntu), or set {var} to a compiler you have."
        )


def build_ext_command(extension, build_lib: str, build_temp: str, extra_flags: list | None = None):
    """A ready ``build_ext`` for one extension: module into ``build_lib``, objects into ``build_temp``."""
    Distribution, _e, build_ext, _c, _d, _l = distutils()
    require_compiler(cplus=getattr(extension, "language", None) == "c++")
    dist = Distribution()
    config_files = dist.find_config_files()
    if "setup.cfg" in config_files:  # the kernel's working folder is not a project being built
        config_files.remove("setup.cfg")
    dist.parse_config_files(config_files)
    if extra_flags:
        extension = copy.copy(extension)
        extension.extra_compile_args = list(extension.extra_compile_args or []) + extra_flags
        extension.extra_link_args = list(extension.extra_link_args or []) + extra_flags
    cmd = build_ext(dist)
    cmd.finalize_options()
    cmd.build_lib = build_lib
    cmd.build_temp = build_temp
    cmd.force = True
    cmd.extensions = [extension]
    return cmd


def compile_command(language: str = "c") -> list[str]:
    """The compiler and flags ``build_ext`` compiles a source of ``language`` with, and Python's
    include folders: what a precompiled header must be built with to be used."""
    Distribution, _e, build_ext, _c, _d, _l = distutils()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            from distutils.ccompiler import new_compiler
            from distutils.sysconfig import customize_compiler
        except ImportError:  # Python >= 3.12 without setuptools' distutils shim
            from setuptools._distutils.ccompiler import new_compiler
            from setuptools._distutils.sysconfig import customize_compiler
    cmd = build_ext(Distribution())
    cmd.finalize_options()
    compiler = new_compiler(compiler=cmd.compiler)
    customize_compiler(compiler)
    argv = list(getattr(compiler, "compiler_so_cxx", None) or compiler.compiler_so) if language == "c++" else None
    argv = argv or list(compiler.compiler_so)
    return argv + [f"-I{d}" for d in cmd.include_dirs or []]


def failure_kind(exc) -> str:
    """``ld`` for a link error, ``cc`` for any other compiler error."""
    return "ld" if type(exc).__name__ == "LinkError" else "cc"
