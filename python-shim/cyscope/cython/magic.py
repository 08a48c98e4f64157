"""The ``%%cython`` cell magic: Cython's options, plus ``--debug``; diagnostics and annotation as MIME bundles."""

from __future__ import annotations

import json
import keyword
import os
import sys

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, magics_class

from . import annotation as annotation_mod
from . import diagnostics as diag_mod
from . import plugins
from .build import Builder, BuildOptions, BuildResult


def _show(bundle: dict) -> None:
    from IPython.display import display

    display(bundle, raw=True)


@magics_class
class CyscopeCythonMagics(Magics):
    def __init__(self, shell):
        super().__init__(shell)
        self.builder = Builder()

    @property
    def last_result(self) -> BuildResult | None:
        return self.builder.last_result

    def _push_public(self, module) -> None:
        names = getattr(module, "__all__", None)
        if names is None:
            names = [k for k in module.__dict__ if not k.startswith("_")]
        self.shell.push({k: getattr(module, k) for k in names})

    @magic_arguments.magic_arguments()
    @magic_arguments.argument(
        "-a",
        "--annotate",
        action="store_const",
        const="default",
        dest="annotate",
        help="Annotate the source: Python-interaction score and generated C per line (editor overlay + HTML).",
    )
    @magic_arguments.argument(
        "--annotate-fullc",
        action="store_const",
        const="fullc",
        dest="annotate",
        help="Like -a; the HTML also carries the complete generated C (Cython 3 only; 0.29 falls back to -a).",
    )
    @magic_arguments.argument("-+", "--cplus", action="store_true", default=False, help="Generate and build C++.")
    @magic_arguments.argument(
        "-3", dest="language_level", action="store_const", const=3, default=None, help="Python 3 semantics (default)."
    )
    @magic_arguments.argument(
        "-2", dest="language_level", action="store_const", const=2, default=None, help="Python 2 semantics."
    )
    @magic_arguments.argument(
        "-f", "--force", action="store_true", default=False, help="Rebuild even when a cached module exists."
    )
    @magic_arguments.argument(
        "-c",
        "--compile-args",
        action="append",
        default=[],
        help="Extra C compiler flag (repeatable), e.g. --compile-args=-fopenmp.",
    )
    @magic_arguments.argument(
        "--link-args", action="append", default=[], help="Extra linker flag (repeatable), e.g. --link-args=-fopenmp."
    )
    @magic_arguments.argument("-l", "--lib", action="append", default=[], help="Link against a library (repeatable).")
    @magic_arguments.argument("-n", "--name", help="Module name; `import NAME` then works in later cells.")
    @magic_arguments.argument(
        "-L", dest="library_dirs", metavar="dir", action="append", default=[], help="Library folder (repeatable)."
    )
    @magic_arguments.argument("-I", "--include", action="append", default=[], help="Include folder (repeatable).")
    @magic_arguments.argument(
        "-S", "--src", action="append", default=[], help="Extra C/C++ source file to build in (repeatable)."
    )
    @magic_arguments.argument(
        "--pgo",
        action="store_true",
        default=False,
        help="Profile-guided optimisation: build instrumented, run the cell once, rebuild with the profile.",
    )
    @magic_arguments.argument(
        "--verbose",
        dest="quiet",
        action="store_false",
        default=True,
        help="Show the generated file locations and the exact compiler commands.",
    )
    @magic_arguments.argument(
        "--debug",
        action="store_true",
        default=False,
        help="Debug build: -O0 -g3, keep the C file and write a .pyx line -> C line map beside the module.",
    )
    @cell_magic
    def cython(self, line, cell):
        """Compile a Cython cell, load it, and put its public names in the namespace (cyscope's %%cython)."""
        parser, plugin_dests = _parser()
        args = parser.parse_argstring(line)
        if args.name is not None:
            _check_module_name(args.name)
        opts = BuildOptions.from_args(args, plugin_dests)
        if opts.annotate == "fullc" and self._cython_major() < 3:
            print("cyscope: --annotate-fullc needs Cython 3; producing the normal annotation", file=sys.stderr)
        result = self.builder.run(cell, opts, magic_line=line, show=_show)
        if opts.verbose:
            print(f"cyscope: module {result.module_name} ({'cache hit' if result.cache_hit else 'built'})")
            for label in ("pyx_path", "c_path", "so_path", "html_path", "linemap_path"):
                if getattr(result, label):
                    print(f"  {label[:-5]}: {getattr(result, label)}")
        if result.diagnostics:
            _show(diag_mod.bundle(result.diagnostics, result.output, True, result.module_name))
        elif result.output.strip():
            print(result.output, end="" if result.output.endswith("\n") else "\n")
        _register_with_tracker(self.shell, result)
        module = result.module
        try:
            module.__cyscope_build__ = result
        except (AttributeError, TypeError):
            pass
        self._push_public(module)
        if opts.annotate:
            self._show_annotation(result, cell)
        return None

    @staticmethod
    def _cython_major() -> int:
        from .build import _cython_major

        return _cython_major()

    def _show_annotation(self, result: BuildResult, cell: str) -> None:
        if not result.annotation_path or not result.html_path:
            print("cyscope: Cython produced no annotation for this cell", file=sys.stderr)
            return
        with open(result.annotation_path, encoding="utf-8") as f:
            lines = json.load(f)
        with open(result.html_path, encoding="utf-8") as f:
            html_text = f.read()
        cell_line_count = 1 + len(cell.splitlines())
        data = annotation_mod.payload(lines, result.module_name, cell_line_count)
        data["html_path"] = os.path.abspath(result.html_path)
        _show(annotation_mod.bundle(data, html_text))


MAX_NAME_LENGTH = 200  # NAME plus the longest suffix (.cpython-311-x86_64-linux-gnu.so) fits in a file name


def _check_module_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name):
        raise UsageError(f"-n/--name: {name!r} is not a valid module name")
    if len(name) > MAX_NAME_LENGTH:
        raise UsageError(f"-n/--name: the name is {len(name)} characters long; at most {MAX_NAME_LENGTH}")
    existing = sys.modules.get(name)
    if existing is not None and not hasattr(existing, "__cyscope_build__"):
        # Loading the cell as `sys` or `__main__` would replace that module for everyone in the kernel.
        raise UsageError(f"-n/--name: {name!r} is a module the kernel has already imported; choose another name")


_BASE_DOC = CyscopeCythonMagics.cython.__doc__
_parsers: dict[tuple, tuple] = {}


def _parser():
    """The magic's argument parser with the options of the registered plugins, and those options' dests."""
    registered = plugins.registered()
    cached = _parsers.get(registered)
    if cached is not None:
        return cached
    base = CyscopeCythonMagics.cython.parser
    if not registered:
        parser, dests = base, ()
    else:
        parser = magic_arguments.MagicArgumentParser(
            base.prog, description=base.description, parents=[base], add_help=False
        )
        added = []

        def add_argument(*args, **kwargs):
            action = parser.add_argument(*args, **kwargs)
            added.append(action.dest)
            return action

        for plugin in registered:
            plugin.add_arguments(add_argument)
        dests = tuple(added)
    # `%%cython?` shows the options plugins added too.
    CyscopeCythonMagics.cython.__doc__ = parser.format_help() if registered else _BASE_DOC
    _parsers.clear()
    _parsers[registered] = (parser, dests)
    return parser, dests


def _register_with_tracker(shell, result: BuildResult) -> None:
    """Tell the memory tracker which cell this .pyx is, so bytes its code
    allocates are attributed to that cell's lines (not just to a file)."""
    try:
        from ..extension import current_state
        from ..memory import register_cython_source
    except ImportError:
        return
    state = current_state(shell)
    cell = state.monitor.current_cell() if state is not None else None
    if cell is not None and result.pyx_path:
        register_cython_source(result.pyx_path, cell[0], cell[1])
