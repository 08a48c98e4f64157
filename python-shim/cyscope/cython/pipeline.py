"""The phases of one ``%%cython`` build, in a private folder that is published at the end.

:func:`build` is the whole pipeline on one screen. Each phase is a small function that
returns what it made and what it found (a :class:`Stage`); :meth:`BuildJob.take`
collects the diagnostics and output and stops the build at the first failed phase.
Plugins (:mod:`.plugins`: breakpoint probes, the crash catcher) join in at ``configure``
(flags), after Cython (``process_c``, rewriting the generated C) and after loading.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import annotation as annotation_mod
from . import cache, pgo, utility
from . import diagnostics as diag_mod
from .capture import capture_output
from .compiler import build_ext_command, distutils, failure_kind
from .linemap import write_line_map
from .sage import namespace_support
from .translate import cythonize_extension

if TYPE_CHECKING:
    from .build import BuildOptions
    from .plugins import BuildPlugin
    from .sage import SageConfig


@dataclass
class Stage:
    """What one phase made (``artefact``: its main file) and found (diagnostics, output, failure)."""

    diagnostics: list = field(default_factory=list)
    output: str = ""
    failed: str | None = None  # what failed: "cython", "cc", "ld", "oom", "disk", or a plugin's name
    artefact: str | None = None
    extension: Any = None  # the distutils Extension to compile, after Cython


class BuildFailed(Exception):
    """A phase failed; the job's diagnostics and output say why (``message`` overrides the summary)."""

    def __init__(self, stage: str, message: str | None = None):
        super().__init__(message or stage)
        self.stage = stage
        self.message = message


@dataclass
class BuildJob:
    """One build: what it is for, where it happens, the settings its phases and plugins fill in."""

    cell: str
    code: str  # the .pyx text: line 1 stands for the %%cython line, then the cell
    opts: BuildOptions
    magic_line: str
    name: str
    key: str
    tmp_dir: str  # private build folder, renamed to final_dir when done
    final_dir: str
    sage: SageConfig | None = None
    extra_includes: list = field(default_factory=list)
    plugins: tuple[BuildPlugin, ...] = ()
    share_utility: bool = False  # import Cython's utility code from the shared module (part of the key)
    # Settings, filled by configure() and the plugins' configure().
    compile_args: list = field(default_factory=list)
    link_args: list = field(default_factory=list)
    include_dirs: list = field(default_factory=list)
    library_dirs: list = field(default_factory=list)
    libraries: list = field(default_factory=list)
    sources: list = field(default_factory=list)  # extra C/C++ sources compiled in (-S)
    cython_options: dict = field(default_factory=dict)
    # Collected as phases run.
    diagnostics: list = field(default_factory=list)
    outputs: list = field(default_factory=list)

    def path(self, suffix: str) -> str:
        """``NAME<suffix>`` in the build folder."""
        return os.path.join(self.tmp_dir, self.name + suffix)

    def published(self, suffix: str) -> str:
        """Where ``NAME<suffix>`` will be once the build folder is published."""
        return os.path.join(self.final_dir, self.name + suffix)

    @property
    def cell_lines(self) -> list[str]:
        """Cell lines as the user sees them (index 0 is the %%cython line)."""
        return ["%%cython " + self.magic_line, *self.code.splitlines()[1:]]

    def take(self, stage: Stage) -> Stage:
        """Collect a phase's findings (naming files where they are kept, not in the build folder)."""
        for d in stage.diagnostics:
            self.diagnostics.append({**d, "message": diag_mod.relocate(d["message"], self.tmp_dir, self.final_dir)})
        if stage.output:
            self.outputs.append(diag_mod.relocate(stage.output, self.tmp_dir, self.final_dir))
        if stage.failed:
            raise BuildFailed(stage.failed)
        return stage

    @property
    def output(self) -> str:
        return "".join(self.outputs)


def build(job: BuildJob, ext_suffix: str) -> None:
    """Every phase, in order. Raises :class:`BuildFailed` at the first failed phase."""
    pyx = write_source(job)  # NAME.pyx
    configure(job)  # flags, folders, libraries (+ Sage's, + plugins')
    job.take(share_utility_code(job))  # Cython 3.1+: utility code from a shared module, built once
    cy = job.take(run_cython(job, pyx))  # NAME.c or NAME.cpp (+ NAME.html with -a)
    for plugin in job.plugins:
        job.take(process_c(job, plugin, cy.artefact))  # e.g. breakpoint probes
    module = job.take(compile_module(job, cy.extension, cy.artefact, ext_suffix))  # NAME<ext_suffix>
    write_annotation(job, cy.artefact)  # NAME.annotation.json with -a
    write_debug_line_map(job, cy.artefact)  # NAME.linemap.json with --debug
    publish(job, module.artefact)  # one rename of the whole folder


# ------------------------------------------------------------------ phases
def write_source(job: BuildJob) -> str:
    pyx = job.path(".pyx")
    with open(pyx, "w", encoding="utf-8") as f:
        f.write(job.code)
    return pyx


def configure(job: BuildJob) -> None:
    opts, sage = job.opts, job.sage
    job.compile_args = list(opts.compile_args)
    if opts.debug:
        job.compile_args += ["-O0", "-g3"]
    # The folder is renamed to final_dir once built: make the debug info name the C
    # file where it will live, so the memory tracker (and gdb) map machine code back
    # to the .pyx lines of the cell.
    job.compile_args.append(f"-fdebug-prefix-map={job.tmp_dir}={job.final_dir}")
    job.link_args = list(opts.link_args)
    job.include_dirs = list(opts.include) + list(job.extra_includes)
    job.library_dirs = list(opts.library_dirs)
    job.libraries = list(opts.lib)
    job.sources = list(opts.src)
    cy: dict = {"quiet": not opts.verbose, "language_level": opts.language_level or 3}
    if opts.annotate:
        cy["annotate"] = opts.annotate if cython_major() >= 3 else True
    include_path = list(opts.include)
    if sage is not None:
        job.include_dirs += [d for d in sage.include_dirs if d not in job.include_dirs]
        job.library_dirs += [d for d in sage.library_dirs if d not in job.library_dirs]
        job.libraries += [lib for lib in sage.libraries if lib not in job.libraries]
        include_path += list(sage.include_dirs)
    if include_path:
        cy["include_path"] = include_path
    job.cython_options = cy
    for plugin in job.plugins:
        plugin.configure(job)


def share_utility_code(job: BuildJob) -> Stage:
    if not job.share_utility:
        return Stage()
    info = _distutils_lines(job.code)
    cplus = job.opts.cplus or info.get("language") == "c++"
    flags = [*job.compile_args, *info.get("extra_compile_args", [])]
    flags += [f"-D{m}" if v is None else f"-D{m}={v}" for m, v in info.get("define_macros", [])]
    shared = utility.for_build("c++" if cplus else "c", flags)
    try:
        entry = utility.ready(os.path.dirname(job.final_dir), shared)
    except OSError:  # the cache itself: publishing the cell will say what is wrong
        entry = None
    if entry is None:  # not built yet (now being built in the background): the cell has its own copy
        return Stage()
    job.cython_options["shared_utility_qualified_name"] = shared.name
    pch = utility.pch_dir(entry)
    if pch:
        job.include_dirs.insert(0, pch)  # before Python's own include folder
    with open(job.path(utility.RECIPE_SUFFIX), "w", encoding="utf-8") as f:
        json.dump(shared.recipe(), f)
    return Stage()


def run_cython(job: BuildJob, pyx: str) -> Stage:
    _D, Extension, *_ = distutils()
    from Cython.Compiler.Errors import CompileError

    ext = Extension(
        name=job.name,
        sources=[pyx, *job.sources],
        include_dirs=job.include_dirs,
        library_dirs=job.library_dirs,
        libraries=job.libraries,
        extra_compile_args=job.compile_args,
        extra_link_args=job.link_args,
        language="c++" if job.opts.cplus else "c",
    )
    options = dict(job.cython_options)
    quiet = options.pop("quiet")
    aliases = job.sage.aliases if job.sage is not None else None
    stage = Stage()
    problem = None
    with capture_output() as cap:
        try:
            with namespace_support() if job.sage is not None else contextlib.nullcontext():
                stage.extension = cythonize_extension(ext, job.published(".pyx"), options, aliases, quiet)
        except CompileError:
            stage.failed = "cython"
        except MemoryError:
            stage.failed, problem = "oom", "Cython ran out of memory"
        except OSError as exc:
            stage.failed, problem = "disk", f"Cython could not write the generated C: {exc}"
    stage.output = cap.text
    stage.diagnostics = diag_mod.parse_cython(cap.text, job.name + ".pyx")
    if stage.failed and not _has_error(stage.diagnostics):
        problem = problem or "Cython compilation failed"
        stage.diagnostics.append(diag_mod.diagnostic("error", None, None, problem, "cython"))
    if stage.extension is not None:
        stage.artefact = next((s for s in stage.extension.sources if s.endswith((".c", ".cpp"))), None)
        if stage.artefact and cython_major() < 3:
            absolute_filename_table(stage.artefact, job.name + ".pyx", job.published(".pyx"))
    return stage


def process_c(job: BuildJob, plugin: BuildPlugin, c_path: str) -> Stage:
    try:
        return Stage(diagnostics=list(plugin.process_c(job, c_path) or []))
    except Exception as exc:  # a plugin's bug fails this build, not the kernel
        message = f"{plugin.name} could not process the generated C: {type(exc).__name__}: {exc}"
        return Stage([diag_mod.diagnostic("error", None, None, message, "cc")], failed=plugin.name)


def compile_module(job: BuildJob, ext, c_path: str, ext_suffix: str) -> Stage:
    _D, _E, _b, CCompilerError, DistutilsError, dlog = distutils()
    build_temp = os.path.join(job.tmp_dir, "build")
    stage = Stage()
    old_threshold = dlog.set_threshold(dlog.DEBUG) if job.opts.verbose else None
    try:
        with capture_output() as cap:
            try:
                flags = None
                if job.opts.pgo:
                    # the instrumented build and its training run (the cell's module code)
                    # share this capture: their output is shown with the compiler's
                    untrained = pgo.train(ext, job.name, job.tmp_dir, build_temp)
                    if untrained:
                        stage.diagnostics.append(diag_mod.diagnostic("warning", 1, None, untrained, "cc"))
                    else:
                        flags = pgo.use_flags(job.tmp_dir)
                build_ext_command(ext, job.tmp_dir, build_temp, flags).run()
            except (CCompilerError, DistutilsError) as exc:
                stage.failed = failure_kind(exc)
                print(f"{type(exc).__name__}: {exc}")
    finally:
        if old_threshold is not None:
            dlog.set_threshold(old_threshold)
    stage.output = cap.text
    if cap.text.strip():  # reading the C file for the mapping only costs when there is something to map
        mapper = diag_mod.CellMapper(job.cell_lines, c_path, job.name + ".pyx", job.magic_line)
        link_failed = stage.failed == "ld"
        stage.diagnostics += diag_mod.parse_compiler(cap.text, mapper, os.path.basename(c_path or ""), link_failed)
        stage.output = diag_mod.with_cell_lines(cap.text, mapper, c_path)
    if stage.failed and not _has_error(stage.diagnostics):
        what = "linking" if stage.failed == "ld" else "C compilation"
        stage.diagnostics.append(diag_mod.diagnostic("error", None, None, f"{what} failed (see output)", stage.failed))
    if stage.failed:
        stage.failed = diag_mod.classify_failure(cap.text, stage.failed)
    shutil.rmtree(build_temp, ignore_errors=True)
    if job.opts.pgo:
        pgo.remove_leftovers(job.tmp_dir)
    stage.artefact = job.path(ext_suffix)
    return stage


def write_annotation(job: BuildJob, c_path: str) -> str | None:
    if not job.opts.annotate:
        return None
    html = os.path.splitext(c_path)[0] + ".html"
    if not os.path.exists(html):
        return None
    with open(html, encoding="utf-8") as f:
        lines = annotation_mod.parse_annotation_html(f.read())
    out = job.path(".annotation.json")
    with open(out, "w", encoding="utf-8") as f:
        json.dump(lines, f)
    return out


def write_debug_line_map(job: BuildJob, c_path: str) -> str | None:
    if not (job.opts.debug and c_path):
        return None
    out = job.path(".linemap.json")
    write_line_map(c_path, job.path(".pyx"), out, job.final_dir)
    return out


def publish(job: BuildJob, module_path: str) -> None:
    """Rename the build folder to its key: nobody ever sees a half-written module."""
    if not os.path.exists(module_path):
        raise BuildFailed("cc", "the build produced no module")
    cache.publish(job.tmp_dir, os.path.dirname(job.final_dir), job.key, os.path.basename(module_path))


def keep_failed_build(job: BuildJob) -> None:
    """Keep a failed build's files under its key, so the paths in its messages can be opened.

    The entry has no module: the next run of the cell sets it aside and builds again.
    """
    try:
        shutil.rmtree(os.path.join(job.tmp_dir, "build"), ignore_errors=True)
        cache.publish(job.tmp_dir, os.path.dirname(job.final_dir), job.key, None)
    except OSError:
        pass  # the messages still say what went wrong


# ----------------------------------------------------------------- helpers
def cython_major() -> int:
    from Cython import __version__

    return int(__version__.split(".")[0])


def _distutils_lines(code: str) -> dict:
    """The cell's ``# distutils:`` settings, read as Cython reads them."""
    from Cython.Build.Dependencies import DistutilsInfo

    try:
        return dict(DistutilsInfo(source=code).values)
    except Exception:  # Cython reports a malformed line itself, when it runs
        return {}


def _has_error(diags: list[dict]) -> bool:
    return any(d["severity"] == "error" for d in diags)


def absolute_filename_table(c_path: str, pyx_name: str, pyx_final: str) -> None:
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
