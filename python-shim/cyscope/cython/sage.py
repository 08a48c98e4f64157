"""Sage awareness: the include/library folders and libraries Sage's own cython() uses.

Only consulted when Sage is already imported in the kernel (``'sage' in sys.modules``,
true in a SageMath kernel); importing Sage takes seconds, so a plain kernel never does.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass, field


@dataclass
class SageConfig:
    libraries: list = field(default_factory=list)
    library_dirs: list = field(default_factory=list)
    include_dirs: list = field(default_factory=list)
    aliases: dict = field(default_factory=dict)

    def fingerprint(self) -> list:
        return [self.libraries, self.library_dirs, self.include_dirs, sorted(self.aliases)]


_cached: SageConfig | None = None


def sage_loaded() -> bool:
    return "sage" in sys.modules


def _from_sage_env() -> SageConfig:
    from sage.env import cython_aliases, sage_include_directories  # type: ignore[import-not-found]

    try:
        from sage.env import SAGE_LOCAL  # type: ignore[import-not-found]
    except ImportError:
        SAGE_LOCAL = None
    aliases = dict(cython_aliases())
    libs = ["mpfr", "gmp", "gmpxx", "pari", "m", "ec", "gsl", *aliases.get("CBLAS_LIBRARIES", []), "ntl"]
    libdirs = [os.path.join(SAGE_LOCAL, "lib")] if SAGE_LOCAL else []
    libdirs += list(aliases.get("CBLAS_LIBDIR", [])) + list(aliases.get("NTL_LIBDIR", []))
    incdirs = list(sage_include_directories()) + list(aliases.get("CBLAS_INCDIR", []))
    incdirs += list(aliases.get("NTL_INCDIR", []))
    return SageConfig(libs, libdirs, incdirs, aliases)


def sage_config() -> SageConfig | None:
    """Sage's build settings when Sage is loaded, else None. Computed once per process."""
    global _cached
    if _cached is not None:
        return _cached
    if not sage_loaded():
        return None
    try:
        # Sage's own helper when it exists (Sage >= 9.x), so we follow its choices exactly.
        from sage.misc.cython import _standard_libs_libdirs_incdirs_aliases  # type: ignore[import-not-found]

        libs, libdirs, incdirs, aliases = _standard_libs_libdirs_incdirs_aliases()
        _cached = SageConfig(list(libs), list(libdirs), list(incdirs), dict(aliases))
    except Exception:
        try:
            _cached = _from_sage_env()
        except Exception:
            return None
    return _cached


def namespace_support():
    """Sage's context manager that lets Cython cimport from its PEP 420 packages, if any."""
    try:
        from sage.misc.package_dir import cython_namespace_package_support  # type: ignore[import-not-found]
    except Exception:
        return contextlib.nullcontext()
    return cython_namespace_package_support()
