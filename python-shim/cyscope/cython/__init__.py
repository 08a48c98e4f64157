"""cyscope's ``%%cython`` cell magic (compile, link, load; diagnostics on cell lines; annotation).

The extension calls :func:`register` with the shell. It replaces Cython's own
``%%cython`` whichever of the two is loaded first: Cython's ``%load_ext Cython`` later
re-registers its magic, so a ``pre_run_cell`` hook puts ours back before the next cell.
"""

from __future__ import annotations

from .build import BuildOptions, BuildResult, CythonBuildError

__all__ = ["BuildOptions", "BuildResult", "CythonBuildError", "last_result", "register", "unregister"]

_ATTR = "_cyscope_cython_magics"


def _ours_active(ipython, magics) -> bool:
    current = ipython.magics_manager.magics["cell"].get("cython")
    return getattr(current, "__self__", None) is magics


def register(ipython) -> None:
    """Register cyscope's ``%%cython`` on ``ipython`` (idempotent) and keep it registered."""
    from .magic import CyscopeCythonMagics

    magics = getattr(ipython, _ATTR, None)
    if magics is None:
        magics = CyscopeCythonMagics(ipython)
        setattr(ipython, _ATTR, magics)

        def _reclaim(*_args, **_kwargs):
            if not _ours_active(ipython, magics):
                ipython.register_magics(magics)

        magics._reclaim = _reclaim
        ipython.events.register("pre_run_cell", _reclaim)
    if not _ours_active(ipython, magics):
        ipython.register_magics(magics)


def unregister(ipython) -> None:
    """Stop re-claiming ``%%cython`` and drop ours (Cython's comes back on ``%load_ext Cython``)."""
    magics = getattr(ipython, _ATTR, None)
    if magics is None:
        return
    try:
        ipython.events.unregister("pre_run_cell", magics._reclaim)
    except ValueError:
        pass
    if _ours_active(ipython, magics):
        del ipython.magics_manager.magics["cell"]["cython"]
    setattr(ipython, _ATTR, None)


def last_result(ipython) -> BuildResult | None:
    """The :class:`BuildResult` of the last ``%%cython`` run in this shell (artefact paths, diagnostics)."""
    magics = getattr(ipython, _ATTR, None)
    return None if magics is None else magics.last_result
