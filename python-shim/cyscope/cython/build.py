"""Cythonize, compile, link and load one ``%%cython`` cell, with a private content-addressed cache.

Layout of the cache (see :mod:`.cache`)::

    <cache>/<python tag>/<key>/NAME.pyx      the cell, with a blank first line
                               NAME.c        generated C (or .cpp)
                               NAME<EXT>     the extension module
                               NAME.html     with -a
                               NAME.annotation.json   with -a (parsed)
                               NAME.linemap.json      with --debug

``<key>`` is a hash of everything that changes the module. A build happens in a private
temporary folder beside it and is published with one ``rename`` of the folder, so a
second kernel compiling the same cell either wins the rename or throws its copy away;
nobody ever sees a half-written module.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import annotation as annotation_mod
from . import diagnostics as diag_mod
from .cache import cache_dir
from .capture import capture_output
from .linemap import write_line_map
from .sage import namespace_support, sage_config

FORMAT_VERSION = 1
EXT_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]

_NUMPY_CIMPORT = re.compile(r"^\s*(?:cimport\s+numpy\b|from\s+numpy(?:\.\w+)*\s+cimport\b)", re.MULTILINE)

_COMPILER_CONFIG_VARS = ("CC", "CXX", "CFLAGS", "CCSHARED", "LDSHARED", "LDCXXSHARED", "LDFLAGS", "OPT", "BASECFLAGS")
_COMPILER_ENV_VARS = ("CC", "CXX", "CFLAGS", "CPPFLAGS", "CXXFLAGS", "LDFLAGS", "LDSHARED", "ARCHFLAGS", "OPT")

PGO_FLAGS = {
    "gen": ["-fprofile-generate", "-fprofile-dir={dir}"],
    "use": ["-fprofile-use", "-fprofile-correction", "-fprofile-dir={dir}"],
}


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

    @classmethod
    def from_args(cls, args) -> BuildOptions:
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
    diagnostics: list = field(default_factory=list)
    output: str = ""
    seconds: float = 0.0
    module: Any = None


def cython_version() -> str:
    from Cython import __version__

    return __version__


def _cython_major() -> int:
    return int(cython_version().split(".")[0])


def _compiler_fingerprint() -> list:
    cv = sysconfig.get_config_vars()
    return [[k, cv.get(k)] for k in _COMPILER_CONFIG_VARS] + [[k, os.environ.get(k)] for k in _COMPILER_ENV_VARS]


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


def pyx_source(cell: str) -> str:
    """The cell as a .pyx: a blank line stands for the ``%%cython`` line, so line N == cell line N."""
    return "\n" + (cell if cell.endswith("\n") else cell + "\n")


def compute_key(code: str, opts: BuildOptions, extra_includes: list, sage_fp) -> str:
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
        "compiler": _compiler_fingerprint(),
        "includes": extra_includes,
        "numpy": _numpy_fingerprint(extra_includes),
        "sage": sage_fp,
    }
    if opts.force:
        material["force"] = [time.time_ns(), os.getpid()]
    return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode("utf-8")).hexdigest()


@contextlib.contextmanager
def _absolute_source_paths(mapping: dict):
    """Make Cython write absolute .pyx paths (published location) into the C it generates.

    Cython names a source by its path relative to the working directory in the position
    comments, in error messages and in ``co_filename``. The breakpoint feature and
    tracebacks need one stable absolute path: the file's place in the cache once published.
    """
    from Cython.Compiler.Scanning import FileSourceDescriptor

    originals = {
        name: getattr(FileSourceDescriptor, name)
        for name in ("get_description", "get_error_description", "get_filenametable_entry")
    }

    def wrap(name):
        original = originals[name]

        def method(self):
            target = mapping.get(self.filename)
            return target if target is not None else original(self)

        return method

    for name in originals:
        setattr(FileSourceDescriptor, name, wrap(name))
    try:
        yield
    finally:
        for name, original in originals.items():
            setattr(FileSourceDescriptor, name, original)


def _absolute_filename_table(c_path: str, pyx_name: str, pyx_final: str) -> None:
    """Cython 0.29 writes only the basename into the C file's filename table (``__pyx_f``), which
    becomes ``co_filename`` in tracebacks; put the absolute path there, as Cython 3 does."""
    with open(c_path, encoding="utf-8") as f:
        text = f.read()
    start = text.find("*__pyx_f[] = {")
    if start < 0:
        return
    end = text.find("};", start)
    entry = '"' + pyx_name + '"'
    table = text[start:end]
    if entry in table:
        escaped = pyx_final.replace("\\", "\\\\").replace('"', '\\"')
        text = text[:start] + table.replace(entry, '"' + escaped + '"') + text[end:]
        with open(c_path, "w", encoding="utf-8") as f:
            f.write(text)


def _untracked():
    try:
        from ..memory import untracked  # type: ignore[attr-defined]
    except ImportError:
        return contextlib.nullcontext()
    return untracked()


def _distutils():
    import warnings

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


def _build_ext_command(extension, build_lib: str, build_temp: str, extra_flags: list | None = None):
    Distribution, _e, build_ext, _c, _d, _l = _distutils()
    dist = Distribution()
    config_files = dist.find_config_files()
    if "setup.cfg" in config_files:
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


class _Failed(Exception):
    def __init__(self, phase: str):
        super().__init__(phase)
        self.phase = phase


STALE_BUILD_SECONDS = 24 * 3600


def _remove_stale_builds(root: str) -> None:
    """Drop ``.build-*`` folders left by kernels killed mid-build (a day old: no live build is that slow)."""
    limit = time.time() - STALE_BUILD_SECONDS
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for entry in entries:
        if entry.name.startswith(".build-"):
            try:
                if entry.stat(follow_symlinks=False).st_mtime < limit:
                    shutil.rmtree(entry.path, ignore_errors=True)
            except OSError:
                pass


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
        key = compute_key(code, opts, extra_includes, sage.fingerprint() if sage else None)
        name = opts.name or f"_cyscope_magic_{key[:32]}"
        root = cache_dir()
        final_dir = os.path.join(root, key)
        so_path = os.path.join(final_dir, name + EXT_SUFFIX)

        if os.path.exists(so_path):
            result = self._describe(name, key, final_dir, so_path, cache_hit=True)
        else:
            with _untracked():
                result = self._build(
                    code, cell, opts, name, key, root, final_dir, so_path, extra_includes, sage, magic_line, show
                )
        try:
            result.module = _load(name, so_path)
        except ImportError as exc:
            raise self._load_error(exc, result, cell, magic_line, show) from None
        result.seconds = time.perf_counter() - start
        self.last_result = result
        return result

    # ----------------------------------------------------------------- helpers
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
            show(diag_mod.bundle(diags, msg, False, result.module_name))
        return CythonBuildError(f"the compiled module {result.module_name} could not be loaded", diags, msg)

    def _build(self, code, cell, opts, name, key, root, final_dir, so_path, extra_includes, sage, magic_line, show):
        import warnings

        _D, Extension, _b, CCompilerError, DistutilsError, dlog = _distutils()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Debian's Cython imports pythran, which warns about numpy
            from Cython.Build import cythonize
            from Cython.Compiler.Errors import CompileError

        _remove_stale_builds(root)
        tmp = tempfile.mkdtemp(prefix=".build-", dir=root)
        try:
            pyx_tmp = os.path.join(tmp, name + ".pyx")
            pyx_final = os.path.join(final_dir, name + ".pyx")
            with open(pyx_tmp, "w", encoding="utf-8") as f:
                f.write(code)

            compile_args = list(opts.compile_args)
            if opts.debug:
                compile_args += ["-O0", "-g3"]
            # The folder is renamed to final_dir once built: make the debug
            # info name the C file where it will live, so the memory tracker
            # (and gdb) map machine code back to the .pyx lines of the cell.
            compile_args.append(f"-fdebug-prefix-map={tmp}={final_dir}")
            include_dirs = list(opts.include) + extra_includes
            library_dirs = list(opts.library_dirs)
            libraries = list(opts.lib)
            if sage is not None:
                include_dirs += [d for d in sage.include_dirs if d not in include_dirs]
                library_dirs += [d for d in sage.library_dirs if d not in library_dirs]
                libraries += [lib for lib in sage.libraries if lib not in libraries]
            ext = Extension(
                name=name,
                sources=[pyx_tmp, *opts.src],
                include_dirs=include_dirs,
                library_dirs=library_dirs,
                libraries=libraries,
                extra_compile_args=compile_args,
                extra_link_args=list(opts.link_args),
                language="c++" if opts.cplus else "c",
            )
            cy_opts: dict = {
                "quiet": not opts.verbose,
                "force": True,
                "language_level": opts.language_level or 3,
            }
            if opts.annotate:
                cy_opts["annotate"] = opts.annotate if _cython_major() >= 3 else True
            include_path = list(opts.include)
            if sage is not None:
                include_path += list(sage.include_dirs)
                cy_opts["aliases"] = sage.aliases
            if include_path:
                cy_opts["include_path"] = include_path

            cell_lines = ["%%cython " + magic_line, *code.splitlines()[1:]]
            diags: list[dict] = []
            outputs: list[str] = []
            failed = None
            built_ext = None

            # 1. Cython
            with _absolute_source_paths({pyx_tmp: pyx_final}), capture_output() as cap:
                try:
                    with namespace_support() if sage is not None else contextlib.nullcontext():
                        built_ext = cythonize([ext], **cy_opts)[0]
                except CompileError:
                    failed = "cython"
            outputs.append(cap.text)
            diags += diag_mod.parse_cython(cap.text, name + ".pyx")
            if failed and not any(d["severity"] == "error" for d in diags):
                diags.append(diag_mod.diagnostic("error", None, None, "Cython compilation failed", "cython"))

            c_path = None
            if built_ext is not None:
                c_path = next((s for s in built_ext.sources if s.endswith((".c", ".cpp"))), None)
                if c_path and _cython_major() < 3:
                    _absolute_filename_table(c_path, name + ".pyx", pyx_final)

            # 2. C compiler and linker
            if failed is None:
                build_temp = os.path.join(tmp, "build")
                old_threshold = dlog.set_threshold(dlog.DEBUG) if opts.verbose else None
                try:
                    flags = None
                    if opts.pgo:
                        flags = [f.format(dir=os.path.join(tmp, "pgo")) for f in PGO_FLAGS["use"]]
                    with capture_output() as cap:
                        try:
                            if opts.pgo:
                                # the instrumented build and its training run (the cell's module code)
                                # share this capture: their output is shown with the compiler's
                                self._pgo_build_instrumented(built_ext, name, tmp, build_temp)
                            _build_ext_command(built_ext, tmp, build_temp, flags).run()
                        except (CCompilerError, DistutilsError) as exc:
                            failed = "ld" if type(exc).__name__ == "LinkError" else "cc"
                            print(f"{type(exc).__name__}: {exc}")
                finally:
                    if old_threshold is not None:
                        dlog.set_threshold(old_threshold)
                outputs.append(cap.text)
                cc_diags = []
                if cap.text.strip():  # reading the C file for the mapping only costs when there is something to map
                    mapper = diag_mod.CellMapper(cell_lines, c_path, name + ".pyx", magic_line)
                    cc_diags = diag_mod.parse_compiler(cap.text, mapper, os.path.basename(c_path or ""), failed == "ld")
                diags += cc_diags
                if failed and not any(d["severity"] == "error" for d in cc_diags):
                    what = "linking" if failed == "ld" else "C compilation"
                    diags.append(diag_mod.diagnostic("error", None, None, f"{what} failed (see output)", failed))
                shutil.rmtree(build_temp, ignore_errors=True)

            output = "".join(outputs)
            if failed is not None:
                if show is not None:
                    show(diag_mod.bundle(diags, output, False, name))
                errors = [d for d in diags if d["severity"] == "error"]
                first = errors[0] if errors else None
                summary = "Cython" if failed == "cython" else ("linker" if failed == "ld" else "C compiler")
                msg = f"{summary} error"
                if first is not None:
                    where = f" at line {first['line']}" if first["line"] is not None else ""
                    msg += f"{where}: {first['message']}"
                    if len(errors) > 1:
                        msg += f" (and {len(errors) - 1} more)"
                raise CythonBuildError(msg, diags, output)

            # 3. Artefacts beside the module, then publish the whole folder at once.
            if opts.annotate:
                html_tmp = os.path.splitext(c_path)[0] + ".html"
                if os.path.exists(html_tmp):
                    with open(html_tmp, encoding="utf-8") as f:
                        lines = annotation_mod.parse_annotation_html(f.read())
                    with open(os.path.join(tmp, name + ".annotation.json"), "w", encoding="utf-8") as f:
                        json.dump(lines, f)
            if opts.debug and c_path:
                write_line_map(c_path, pyx_tmp, os.path.join(tmp, name + ".linemap.json"), final_dir)
            for leftover in os.listdir(tmp):
                if leftover.startswith("_pgo_"):
                    os.unlink(os.path.join(tmp, leftover))
            shutil.rmtree(os.path.join(tmp, "pgo"), ignore_errors=True)
            if not os.path.exists(os.path.join(tmp, name + EXT_SUFFIX)):
                raise CythonBuildError("the build produced no module", diags, output)
            try:
                os.rename(tmp, final_dir)
            except OSError:
                if not os.path.exists(so_path):  # not a lost race: a real problem
                    raise
            result = self._describe(name, key, final_dir, so_path, cache_hit=False)
            result.diagnostics = diags
            result.output = output
            return result
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _pgo_build_instrumented(self, ext, name, tmp, build_temp):
        """Build an instrumented copy as ``_pgo_NAME``, import it once (runs the cell: the training),
        and leave the profile in ``tmp/pgo`` for the real build."""
        pgo_name = "_pgo_" + name
        wrapper = os.path.join(tmp, pgo_name + ".c")
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
        flags = [f.format(dir=os.path.join(tmp, "pgo")) for f in PGO_FLAGS["gen"]]
        _build_ext_command(gen, tmp, build_temp, flags).run()
        _load(pgo_name, os.path.join(tmp, pgo_name + EXT_SUFFIX))
        sys.modules.pop(pgo_name, None)
