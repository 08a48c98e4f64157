"""Compile (or take from the cache) and load one ``%%cython`` cell.

The phases of a build are in :mod:`.pipeline`; this module decides whether to build
(the cache key), where (the cache, :mod:`.cache`), and loads the result.

Layout of the cache (see :mod:`.cache`)::

    <cache>/<python tag>/<key>/NAME.pyx      the cell, line 1 standing for the %%cython line
                               NAME.c        generated C (or .cpp)
                               NAME<EXT>     the extension module
                               NAME.html     with -a
                               NAME.annotation.json   with -a (parsed)
                               NAME.linemap.json      with --debug

``<key>`` is a hash of everything that changes the module. A build happens in a private
temporary folder beside it and is published with one ``rename`` of the folder, so a
second kernel compiling the same cell either wins the rename or throws its copy away;
nobody ever sees a half-written module. Nothing is loaded from an entry another user
could have touched (:mod:`.cache`).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import cache, pipeline, plugins, utility
from . import diagnostics as diag_mod
from .cache import cache_dir
from .compiler import compiler_fingerprint
from .pipeline import BuildFailed, BuildJob
from .plugins import BuildPlugin
from .sage import sage_config

FORMAT_VERSION = 2
EXT_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

_NUMPY_CIMPORT = re.compile(r"^\s*(?:cimport\s+numpy\b|from\s+numpy(?:\.\w+)*\s+cimport\b)", re.MULTILINE)


class CythonBuildError(Exception):
    """The cell did not compile, link or load; ``diagnostics`` says where and why.

    The traceback IPython shows is this short summary only (the full compiler output
    went out just before, in the diagnostics display).
    """

    def __init__(self, message: str, diagnostics: list[dict], output: str = ""):
        super().__init__(message)
        self.diagnostics = diagnostics
        self.output = output

    def _render_traceback_(self):
        lines = [f"{type(self).__name__}: {self}"]
        errors = [d for d in self.diagnostics if d["severity"] == "error"]
        for d in errors[1:]:
            where = f"line {d['line']}" if d["line"] is not None else "(no cell line)"
            lines.append(f"  {where}: {d['message']} [{d['source']}]")
        return lines


@dataclass
class BuildOptions:
    annotate: str | None = None  # None, "default" or "fullc"
    cplus: bool = False
    language_level: int | None = None
    force: bool = False
    compile_args: list = field(default_factory=list)
    link_args: list = field(default_factory=list)
    lib: list = field(default_factory=list)
    library_dirs: list = field(default_factory=list)
    include: list = field(default_factory=list)
    src: list = field(default_factory=list)
    name: str | None = None
    pgo: bool = False
    verbose: bool = False
    debug: bool = False
    plugin_args: dict = field(default_factory=dict)  # values of the options plugins add (by dest)

    @classmethod
    def from_args(cls, args, plugin_dests=()) -> BuildOptions:
        return cls(
            annotate=args.annotate,
            cplus=bool(args.cplus),
            language_level=args.language_level,
            force=bool(args.force),
            compile_args=list(args.compile_args or []),
            link_args=list(args.link_args or []),
            lib=list(args.lib or []),
            library_dirs=[os.path.abspath(p) for p in args.library_dirs or []],
            include=[os.path.abspath(p) for p in args.include or []],
            src=[os.path.abspath(p) for p in args.src or []],
            name=args.name,
            pgo=bool(args.pgo),
            verbose=not args.quiet,
            debug=bool(args.debug),
            plugin_args={dest: getattr(args, dest, None) for dest in plugin_dests},
        )


@dataclass
class BuildResult:
    """What a ``%%cython`` run produced; paths are absolute and stay valid (the cache keeps them)."""

    module_name: str
    key: str
    directory: str
    pyx_path: str
    c_path: str | None
    so_path: str
    cache_hit: bool
    html_path: str | None = None
    annotation_path: str | None = None
    linemap_path: str | None = None
    shared_utility: str | None = None  # the shared module of Cython's utility code the cell imports, if any
    diagnostics: list = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0
    module: Any = None


def cython_version() -> str:
    from Cython import __version__

    return __version__


def _cython_major() -> int:
    return pipeline.cython_major()


def _file_stamp(path: str) -> list:
    try:
        st = os.stat(path)
        return [path, st.st_size, st.st_mtime_ns]
    except OSError:
        return [path, None, None]


def _numpy_include(code: str) -> list:
    if not _NUMPY_CIMPORT.search(code):
        return []
    import numpy

    return [numpy.get_include()]


def _numpy_fingerprint(includes: list):
    if not includes:
        return None
    import numpy

    return numpy.__version__  # numpy's C ABI changed with 2.0 under the same include path


# Line 1 of the .pyx stands for the %%cython line, so .pyx line N is cell line N. On Cython
# 0.29 it declares the encoding the file is written in, which keeps 0.29 from running its
# encoding regex over line 2 (quadratic on a long run of word characters: 27 s for a
# 150,000-character first code line). Cython 3 skips code lines there; it would also give
# a comment on line 1 the module's own setup code (in -a and the line map), so it stays blank.
PYX_FIRST_LINE_029 = "# -*- coding: utf-8 -*-"


def pyx_source(cell: str) -> str:
    """The cell as a .pyx: line 1 stands for the ``%%cython`` line, so line N == cell line N."""
    first = PYX_FIRST_LINE_029 if _cython_major() < 3 else ""
    return first + "\n" + (cell if cell.endswith("\n") else cell + "\n")


def compute_key(
    code: str, opts: BuildOptions, extra_includes: list, sage_fp, plugin_keys: dict | None = None, shared=None
) -> str:
    material = {
        "format": FORMAT_VERSION,
        "code": code,
        "opts": {
            "annotate": opts.annotate,
            "cplus": opts.cplus,
            "language_level": opts.language_level,
            "compile_args": opts.compile_args,
            "link_args": opts.link_args,
            "lib": opts.lib,
            "library_dirs": opts.library_dirs,
            "include": opts.include,
            "src": [_file_stamp(p) for p in opts.src],
            "name": opts.name,
            "pgo": opts.pgo,
            "debug": opts.debug,
        },
        "python": [sys.version, sys.executable, sys.implementation.cache_tag],
        "cython": cython_version(),
        "compiler": compiler_fingerprint(),
        "includes": extra_includes,
        "numpy": _numpy_fingerprint(extra_includes),
        "sage": sage_fp,
    }
    if plugin_keys:  # only when some plugin takes part: keys of plain builds stay as they were
        material["plugins"] = plugin_keys
    if shared is not None:  # the cell imports Cython's utility code from a shared module
        material["shared_utility"] = shared
    if opts.force:
        material["force"] = [time.time_ns(), os.getpid()]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def _untracked():
    try:
        from ..memory import untracked  # type: ignore[attr-defined]
    except ImportError:
        return contextlib.nullcontext()
    return untracked()


def _load(module_name: str, so_path: str):
    existing = sys.modules.get(module_name)
    if existing is not None and getattr(existing, "__file__", None) == so_path:
        return existing
    spec = importlib.util.spec_from_file_location(module_name, so_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if sys.modules.get(module_name) is module:
            del sys.modules[module_name]
        raise
    return module


def _active_plugins(opts: BuildOptions) -> list[tuple[BuildPlugin, Any]]:
    """The registered plugins that take part in this build, with their cache-key material."""
    active = []
    for plugin in plugins.registered():
        try:
            material = plugin.key(opts)
        except Exception as exc:
            message = f"{plugin.name}: {type(exc).__name__}: {exc}"
            raise CythonBuildError(message, [diag_mod.diagnostic("error", None, None, message, "cython")]) from None
        if material is not None:
            active.append((plugin, material))
    return active


class Builder:
    """Builds and loads cells. Stateless apart from the last result, so one per shell is plenty."""

    def __init__(self):
        self.last_result: BuildResult | None = None

    # ------------------------------------------------------------------ public
    def run(self, cell: str, opts: BuildOptions, magic_line: str = "", show=None) -> BuildResult:
        """Compile (or reuse) and load the cell. ``show(bundle)`` displays MIME bundles."""
        start = time.perf_counter()
        code = pyx_source(cell)
        sage = sage_config()
        extra_includes = _numpy_include(code)
        active = _active_plugins(opts)
        sage_fp = sage.fingerprint() if sage else None
        share = utility.wanted(opts)
        plugin_keys = {p.name: material for p, material in active}
        key = compute_key(code, opts, extra_includes, sage_fp, plugin_keys, utility.FORMAT_VERSION if share else None)
        name = opts.name or f"_cyscope_magic_{key[:32]}"
        tag_dir = cache_dir()
        job = BuildJob(
            cell=cell,
            code=code,
            opts=opts,
            magic_line=magic_line,
            name=name,
            key=key,
            tmp_dir="",
            final_dir=os.path.join(tag_dir, key),
            sage=sage,
            extra_includes=extra_includes,
            plugins=tuple(p for p, _ in active),
            share_utility=share,
        )
        for attempt in (1, 2):
            so_path = cache.trusted_module(tag_dir, key, name + EXT_SUFFIX)
            if so_path is not None:
                result = self._describe(name, key, job.final_dir, so_path, cache_hit=True)
            else:
                with _untracked():
                    result = self._build(job, tag_dir, show)
            try:
                result.shared_utility = self._load_utility(tag_dir, result, show)
                result.module = _load(name, result.so_path)
                break
            except ImportError as exc:
                if result.cache_hit and attempt == 1:  # a damaged entry: build it again
                    cache.set_aside(tag_dir, key, f"its module does not load: {exc}")
                    continue
                raise self._load_error(exc, result, cell, magic_line, show) from None
        for plugin, _ in active:
            try:
                plugin.loaded(result)
            except Exception as exc:  # the module works; say what the plugin could not do
                print(f"cyscope: {plugin.name}: {type(exc).__name__}: {exc}", file=sys.stderr)
        result.seconds = time.perf_counter() - start
        self.last_result = result
        return result

    # ----------------------------------------------------------------- helpers
    def _build(self, job: BuildJob, tag_dir: str, show) -> BuildResult:
        cache.remove_stale_builds(tag_dir)
        try:
            job.tmp_dir = tempfile.mkdtemp(prefix=".build-", dir=tag_dir)
        except OSError as exc:
            message = f"cannot write in the cache folder {tag_dir}: {exc.strerror}"
            raise CythonBuildError(message, [diag_mod.diagnostic("error", None, None, message, "cython")]) from None
        try:
            pipeline.build(job, EXT_SUFFIX)
        except BuildFailed as failure:
            pipeline.keep_failed_build(job)
            raise self._failure(job, failure, show) from None
        finally:
            shutil.rmtree(job.tmp_dir, ignore_errors=True)  # gone already once published
        result = self._describe(job.name, job.key, job.final_dir, job.published(EXT_SUFFIX), cache_hit=False)
        result.diagnostics = job.diagnostics
        result.output = job.output
        return result

    @staticmethod
    def _load_utility(tag_dir: str, result: BuildResult, show) -> str | None:
        """Load the shared utility module the cell imports (if it imports one), building it if needed."""
        try:
            module = utility.load_for(tag_dir, result.directory, result.module_name, _untracked)
        except utility.UtilityUnavailable as exc:
            message = f"the shared utility module the cell imports could not be built: {exc}"
            diags = [diag_mod.diagnostic("error", None, None, message, "ld")]
            if show is not None:
                show(diag_mod.bundle(diags, exc.output, False, result.module_name, "load"))
            raise CythonBuildError(message, diags, exc.output) from None
        return getattr(module, "__file__", None) if module is not None else None

    @staticmethod
    def _failure(job: BuildJob, failure: BuildFailed, show) -> CythonBuildError:
        diags, output = job.diagnostics, job.output
        if show is not None:
            show(diag_mod.bundle(diags, output, False, job.name, failure.stage))
        if failure.message:
            return CythonBuildError(failure.message, diags, output)
        errors = [d for d in diags if d["severity"] == "error"]
        first = errors[0] if errors else None
        msg = diag_mod.stage_error(failure.stage)
        if first is not None:
            where = f" at line {first['line']}" if first["line"] is not None else ""
            msg += f"{where}: {first['message']}"
            if len(errors) > 1:
                msg += f" (and {len(errors) - 1} more)"
        return CythonBuildError(msg, diags, output)

    @staticmethod
    def _describe(name, key, directory, so_path, cache_hit) -> BuildResult:
        pyx = os.path.join(directory, name + ".pyx")
        c_path = None
        for ext in (".c", ".cpp"):
            if os.path.exists(os.path.join(directory, name + ext)):
                c_path = os.path.join(directory, name + ext)
        html = os.path.join(directory, name + ".html")
        ann = os.path.join(directory, name + ".annotation.json")
        lm = os.path.join(directory, name + ".linemap.json")
        return BuildResult(
            module_name=name,
            key=key,
            directory=directory,
            pyx_path=pyx,
            c_path=c_path,
            so_path=so_path,
            cache_hit=cache_hit,
            html_path=html if os.path.exists(html) else None,
            annotation_path=ann if os.path.exists(ann) else None,
            linemap_path=lm if os.path.exists(lm) else None,
        )

    def _load_error(self, exc, result, cell, magic_line, show):
        cell_lines = ["%%cython " + magic_line, *pyx_source(cell).splitlines()[1:]]
        mapper = diag_mod.CellMapper(cell_lines, None, os.path.basename(result.pyx_path), magic_line)
        msg = str(exc)
        line = None
        m = diag_mod._UNDEFINED.search(msg)
        if m:
            found = mapper._find_text(m.group("sym"))
            line = found[0] if found else None
        diags = [diag_mod.diagnostic("error", line, None, msg, "ld")]
        if show is not None:
            show(diag_mod.bundle(diags, msg, False, result.module_name, "load"))
        return CythonBuildError(f"the compiled module {result.module_name} could not be loaded", diags, msg)
