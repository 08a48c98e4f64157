"""The breakpoint-probe phase of a ``%%cython`` build (a build plugin).

While JupyterLab's debugger is on for the kernel, or with ``%%cython --debug``, the cell
is cythonized with Cython's ``linetrace`` directive (which marks every executable
statement) and the generated C is rewritten by :func:`cyscope.debugger.instrument.instrument`:
each statement gets a disarmed probe, and ``NAME.probes.json`` beside the module says
what each probe, function and local is. Builds with the debugger off carry no probes,
and the probe setting is part of the cache key (a probe build is a different module).
"""

from __future__ import annotations

import hashlib
import json
import re

from .diagnostics import diagnostic
from .plugins import BuildPlugin

_TRACING_DIRECTIVE = re.compile(r"^#\s*cython\s*:.*\b(?:linetrace|profile)\s*=\s*True", re.MULTILINE | re.IGNORECASE)


_FORMAT: str | None = None


def probe_format() -> str:
    """The probe format in the cache key: the map's version and a digest of the code that
    writes the probes, so that a changed instrumenter never meets an old probe build."""
    global _FORMAT
    if _FORMAT is None:
        from ..debugger import generated_c, instrument

        digest = hashlib.sha256()
        for module in (instrument, generated_c):
            with open(module.__file__, "rb") as f:
                digest.update(f.read())
        _FORMAT = f"{instrument.MAP_VERSION}-{digest.hexdigest()[:16]}"
    return _FORMAT


class ProbesPlugin(BuildPlugin):
    name = "breakpoint probes"

    def __init__(self, wanted, loaded=None):
        """``wanted(opts)``: whether this build gets probes; ``loaded(result)`` after each
        probe build is loaded (fresh or from the cache)."""
        self._wanted = wanted
        self._loaded = loaded

    def key(self, opts):
        if getattr(opts, "pgo", False) or not self._wanted(opts):
            return None  # a PGO build trains by running the cell: no stops in the middle of a build
        return {"probes": probe_format()}

    def configure(self, job) -> None:
        directives = dict(job.cython_options.get("compiler_directives") or {})
        directives["linetrace"] = True  # marks every statement: the probe sites
        job.cython_options["compiler_directives"] = directives
        job.compile_args.append("-g")  # line tables: compiled callers in the call stack

    def process_c(self, job, c_path: str) -> list[dict]:
        from ..debugger.instrument import instrument

        with open(c_path, encoding="utf-8") as f:
            text = f.read()
        try:
            new_text, probe_map = instrument(
                text, job.name + ".pyx", job.name, keep_tracing=bool(_TRACING_DIRECTIVE.search(job.code))
            )
        except Exception as exc:  # the build goes on without probes
            message = f"cyscope could not add breakpoint probes ({type(exc).__name__}: {exc}); breakpoints are off"
            return [diagnostic("warning", None, None, message, "cython")]
        probe_map["pyx"] = job.published(".pyx")
        probe_map["c"] = job.published(".cpp" if c_path.endswith(".cpp") else ".c")
        with open(c_path, "w", encoding="utf-8") as f:
            f.write(new_text)
        with open(job.path(".probes.json"), "w", encoding="utf-8") as f:
            json.dump(probe_map, f)
        return []

    def loaded(self, result) -> None:
        if self._loaded is not None:
            self._loaded(result)
