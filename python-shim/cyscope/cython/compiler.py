"""The C/C++ compiler and linker, driven through distutils' ``build_ext`` as Cython's magic does.

``build_ext`` picks the compiler, the flags and the module suffix exactly as a
``setup.py`` would on this interpreter (sysconfig, ``CC``/``CFLAGS``/``LDSHARED``...),
which is what users of ``%%cython`` expect.
"""

from __future__ import annotations

import copy
import warnings


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
            from setuptools import Distribution, Extension
            from setuptools._distutils import log
            from setuptools._distutils.errors import CCompilerError, DistutilsError
            from setuptools.command.build_ext import build_ext
    return Distribution, Extension, build_ext, CCompilerError, DistutilsError, log


def build_ext_command(extension, build_lib: str, build_temp: str, extra_flags: list | None = None):
    """A ready ``build_ext`` for one extension: module into ``build_lib``, objects into ``build_temp``."""
    Distribution, _e, build_ext, _c, _d, _l = distutils()
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


def failure_kind(exc) -> str:
    """``ld`` for a link error, ``cc`` for any other compiler error."""
    return "ld" if type(exc).__name__ == "LinkError" else "cc"
