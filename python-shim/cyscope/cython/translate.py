"""Cython's step of a build: the cell's ``.pyx`` in, C or C++ out, naming the ``.pyx`` where it is published.

Cython names a source by its path relative to the working folder (position comments,
the filename table behind tracebacks, code objects' ``co_filename``). The memory
tracker, tracebacks and the debugger need one absolute path that stays valid: the
place of the ``.pyx`` once its build folder is published, which does not exist yet
while Cython runs. This module runs Cython's own steps (``create_extension_list``,
then ``run_pipeline``, as ``cythonize`` does for one module) with a :class:`Context`
of its own; that context gives the descriptor of the cell's ``.pyx``, in this
compilation only, methods that answer the published path. Nothing of Cython's is
changed for anyone else in the process (another thread's ``cythonize``, Cython's own
magic), on Cython 0.29 and 3.x alike.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Any


def _cython():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Debian's Cython imports pythran, which warns about numpy
        from Cython.Build.Dependencies import create_extension_list
        from Cython.Compiler import Main
        from Cython.Compiler.Errors import CompileError, PyrexError
        from Cython.Compiler.Scanning import FileSourceDescriptor
    return create_extension_list, Main, CompileError, PyrexError, FileSourceDescriptor


_classes: dict[str, type] = {}


def _published_source_class(FileSourceDescriptor) -> type:
    cls = _classes.get("source")
    if cls is None:

        class PublishedSource(FileSourceDescriptor):
            """A source descriptor that names its file by ``published_path`` everywhere Cython writes a name."""

            published_path = ""

            def get_description(self):
                return self.published_path

            def get_error_description(self):
                return self.published_path

            def get_filenametable_entry(self):
                return self.published_path

            def get_relative_path(self):  # Cython 3: code objects' co_filename
                from pathlib import Path

                return Path(self.published_path)

        cls = _classes["source"] = PublishedSource
    return cls


def _publishing_context(Main, FileSourceDescriptor, options, source_path: str, published_path: str):
    """A Cython ``Context`` that renames the descriptor of ``source_path`` as it starts parsing it.

    ``parse`` is the first place the main module's descriptor is used for a name (the
    scanner, then every node position, the filename table and the code objects take it
    from there); the ``.pxd`` files it pulls in keep their own names.
    """
    published_cls = _published_source_class(FileSourceDescriptor)

    class PublishingContext(Main.Context):
        def parse(self, source_desc, scope, pxd, full_module_name):
            if not pxd and type(source_desc) is FileSourceDescriptor and source_desc.filename == source_path:
                source_desc.__class__ = published_cls
                source_desc.published_path = published_path
            return super().parse(source_desc, scope, pxd, full_module_name)

    return _context(PublishingContext, options)


def _context(cls, opts):
    # The same arguments as Context.from_options (3.x) and CompilationOptions.create_context (0.29).
    return cls(opts.include_path, opts.compiler_directives, opts.cplus, opts.language_level, options=opts)


def cythonize_extension(ext, published_path: str, options: dict[str, Any], aliases=None, quiet: bool = True):
    """Cythonize the one ``.pyx`` of ``ext`` (an absolute path) and return the Extension to compile.

    As ``cythonize([ext], force=True, quiet=quiet, aliases=aliases, **options)`` would:
    ``# distutils:`` lines of the source are applied to the Extension, the language
    picks ``.c`` or ``.cpp``, and the returned Extension lists the generated file in
    place of the ``.pyx``. Raises Cython's ``CompileError`` when the source has errors
    (Cython has printed them to ``sys.stderr`` by then); ``OSError`` (a full or read-only
    disk) and ``MemoryError`` are left to the caller, which names them.
    """
    create_extension_list, Main, CompileError, PyrexError, FileSourceDescriptor = _cython()
    options = dict(options)
    options.setdefault("include_path", ["."])
    c_options = Main.CompilationOptions(**options)
    cpp_options = Main.CompilationOptions(**options)
    cpp_options.cplus = True
    ctx = _context(Main.Context, c_options)
    modules, metadata = create_extension_list([ext], ctx=ctx, quiet=quiet, aliases=aliases)
    (module,) = modules
    (pyx,) = [s for s in module.sources if s.endswith((".pyx", ".py"))]
    cplus = module.language == "c++"
    chosen = cpp_options if cplus else c_options
    c_file = os.path.splitext(pyx)[0] + (".cpp" if cplus else ".c")
    chosen.output_file = c_file
    chosen.embedded_metadata = metadata.get(module.name)
    if not quiet:
        print(f"Cythonizing {pyx}")
    context = _publishing_context(Main, FileSourceDescriptor, chosen, os.path.abspath(pyx), published_path)
    try:
        result = Main.run_pipeline(pyx, chosen, module.name, context)
        failed = result.num_errors > 0
    except PyrexError as exc:
        sys.stderr.write(f"{exc}\n")
        failed = True
    if failed:
        raise CompileError(None, pyx)
    module.sources = [c_file if s == pyx else s for s in module.sources]
    return module
