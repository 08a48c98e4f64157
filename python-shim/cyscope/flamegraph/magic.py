"""``%%memory`` (run a cell tracked, show its flamegraph) and
``%memory_flamegraph N`` (a cell's flamegraph from the kernel's history)."""

from __future__ import annotations

import ast
import re
import sys

from IPython.core import magic_arguments
from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .report import VIEWS, flamegraph_bundle, report_of_cell

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_FACTORS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_bytes(text: str) -> int:
    """'4096', '64K', '1.5MiB', '2 MB' -> bytes (powers of 1024)."""
    m = _SIZE.match(text)
    if not m:
        raise UsageError(f"--threshold: {text!r} is not a size in bytes (e.g. 4096, 64K, 1.5M)")
    return int(float(m.group(1)) * _FACTORS[m.group(2)[:1].lower()])


def _view_arguments(func):
    for flag, help_text in (
        ("--peak", "Stacks live at the cell's peak (the default)."),
        ("--leaks", "Stacks allocated in the cell and still alive at its end."),
        ("--allocated", "Every allocation the cell made, freed or not."),
    ):
        func = magic_arguments.argument(flag, dest="view", action="store_const", const=flag[2:], help=help_text)(func)
    func = magic_arguments.argument(
        "--inverted", action="store_true", default=False, help="Allocating frames at the root, callers below."
    )(func)
    func = magic_arguments.argument(
        "--threshold",
        metavar="BYTES",
        default=None,
        help="Merge a frame's children smaller than this into one box (4096, 64K, 1.5M).",
    )(func)
    func = magic_arguments.argument(
        "--compare", metavar="N", type=int, default=None, help="Compare with cell [N]'s report (colours: grew, shrank)."
    )(func)
    func = magic_arguments.argument(
        "--full-stacks",
        dest="trim",
        action="store_false",
        default=True,
        help="Keep the frames above the cell (the kernel's own: IPython, asyncio, ...).",
    )(func)
    return func


def _options(args) -> tuple[str, dict]:
    view = args.view or "peak"
    options: dict = {"inverted": args.inverted, "trim": args.trim}
    if args.threshold is not None:
        options["threshold"] = parse_bytes(args.threshold)
    if args.compare is not None:
        try:
            options["compare"] = report_of_cell(args.compare)
        except LookupError as exc:
            raise UsageError(f"--compare {args.compare}: {exc}") from None
    return view, options


def _show(bundle: dict) -> None:
    from IPython.display import display

    display(bundle, raw=True)


def _current_cell(shell) -> tuple[int | None, str | None]:
    """(execution count, cell id) of the cell running this magic."""
    try:
        from ..extension import _count_of_starting_cell, current_state
    except ImportError:
        return shell.execution_count, None
    state = current_state(shell)
    cell = state.monitor.current_cell() if state is not None else None
    if cell is not None:
        return cell[0], cell[1]
    return _count_of_starting_cell(shell), None


@magics_class
class MemoryMagics(Magics):
    @magic_arguments.magic_arguments()
    @_view_arguments
    @magic_arguments.argument(
        "--native", action="store_true", default=False, help="Add native frames (C, C++, libraries) to the stacks."
    )
    @magic_arguments.argument(
        "--exact", action="store_true", default=False, help="Record the stack of every allocation (not a sample)."
    )
    @cell_magic
    def memory(self, line, cell):
        """Run the cell with its allocations tracked, then show where its memory went as a flamegraph.

        The cell runs as it would without the magic: its names stay in the
        namespace and its last expression is shown.
        """
        __tracebackhide__ = True
        from .. import memory

        args = magic_arguments.parse_argstring(self.memory, line)
        view, options = _options(args)
        count, cell_id = _current_cell(self.shell)
        code = _compile_cell(self.shell, cell, count)
        if not memory.available():
            print(f"cyscope: memory tracking is not available here: {memory.unavailable_reason()}", file=sys.stderr)
            _run(self.shell, code)
            return None
        label = f"cell [{count}]" if count is not None else "cell"
        error = None
        with memory.track(native=args.native, exact=args.exact, label=label) as report:
            try:
                _run(self.shell, code)
            except BaseException as exc:  # shown after the flamegraph of what ran
                error = exc
        report.execution_count = count
        report.cell_id = cell_id
        if not isinstance(error, KeyboardInterrupt):
            _show(flamegraph_bundle(report, view, **options))
        if error is not None:
            raise error.with_traceback(error.__traceback__)
        return None

    @magic_arguments.magic_arguments()
    @magic_arguments.argument(
        "cell", nargs="?", type=int, default=None, help="Execution count of the cell (default: the previous one)."
    )
    @_view_arguments
    @line_magic
    def memory_flamegraph(self, line):
        """Show cell [N]'s flamegraph from the kernel's history, without running it again."""
        args = magic_arguments.parse_argstring(self.memory_flamegraph, line)
        view, options = _options(args)
        target = args.cell
        if target is None:
            here, _ = _current_cell(self.shell)
            target = (here or 1) - 1
        try:
            report = report_of_cell(target)
        except LookupError as exc:
            raise UsageError(str(exc)) from None
        _show(flamegraph_bundle(report, view, **options))


def _compile_cell(shell, cell: str, count: int | None):
    """The cell body compiled as IPython would compile the cell: its line
    numbers are the cell's (line 1 is the %%memory line), and its file maps
    to the cell's execution count, so frames read ``cell [N] line L``."""
    source = "\n" + shell.transform_cell(cell)
    filename = shell.compile.cache(source, count or 0, raw_code="%%memory\n" + cell)
    tree = ast.parse(source, filename=filename)
    last = None
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        last = ast.Interactive(body=[tree.body.pop()])
    body = shell.compile(tree, filename, "exec")
    # 'single' shows the value as Out[N], as the cell's last line would be.
    tail = shell.compile(last, filename, "single") if last is not None else None
    return body, tail


def _run(shell, code) -> None:
    __tracebackhide__ = True
    body, tail = code
    exec(body, shell.user_global_ns, shell.user_ns)
    if tail is not None:
        exec(tail, shell.user_global_ns, shell.user_ns)


def register(ipython) -> None:
    ipython.register_magics(MemoryMagics)


__all__ = ["VIEWS", "MemoryMagics", "parse_bytes", "register"]
