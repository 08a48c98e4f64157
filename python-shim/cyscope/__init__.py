"""cyscope: the kernel side of the cyscope JupyterLab extension.

This module only registers things; the work lives in the submodules.
`%load_ext cyscope` (done silently by the frontend for every Python kernel)
calls :func:`load_ipython_extension`.
"""

from __future__ import annotations

__version__ = "0.1.0"

# The labextension this Python package carries; lets `jupyter labextension`
# find it when the package is installed in development mode.
_LABEXTENSION_NAME = "jupyterlab-cyscope"


def _jupyter_labextension_paths():
    return [{"src": "labextension", "dest": _LABEXTENSION_NAME}]


def __getattr__(name):
    # `cyscope.track` / `cyscope.history` without loading the native tracker
    # at `import cyscope` time (the frontend imports it in every kernel).
    if name in ("track", "history", "untracked", "live_by_cell"):
        from . import memory

        return getattr(memory, name)
    if name in ("crash_reports", "CellCrashed"):
        from . import crash

        return getattr(crash, name)
    raise AttributeError(f"module 'cyscope' has no attribute {name!r}")


def load_ipython_extension(ipython):
    from .extension import load

    load(ipython)


def unload_ipython_extension(ipython):
    from .extension import unload

    unload(ipython)
