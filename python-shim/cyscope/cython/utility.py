"""Cython's shared utility module: the support code every cell would repeat, built once.

Cython writes thousands of lines of utility C (function objects, argument parsing,
memoryviews, ...) into every module; for a five-line cell that is most of what the C
compiler spends its time on. Since Cython 3.1 that code can live in one shared
extension module (``--generate-shared`` once, ``--shared=NAME`` for each cell), which a
cell imports when it loads; the cell's own C then compiles in about half the time.

cyscope builds that module once per Cython version, Python, compiler settings,
language and the cell's own compiler flags (``-c``, ``--debug``'s ``-O0 -g3``, plugins'
flags), caches it as ``<tag>/utility-<key>/`` with the same checks as a cell, and loads
it before any cell that needs it. Beside it is ``pch/Python.h`` with a precompiled
``Python.h.gch`` built with the same flags, which gcc reads instead of parsing
``Python.h`` again for every cell (another compiler, or a precompiled header gcc finds
stale, simply reads the real header).

Cython older than 3.1, ``--pgo`` builds (the training runs the cell in a child process,
and the utility code should be trained with the cell) and ``CYSCOPE_SHARED_UTILITY=0``
keep every cell self-contained. If the shared module cannot be built, the cell is
built self-contained and a note says why.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.machinery
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass

from ..trusted_path import check_dir_at, check_file_at, opened_dir
from . import cache
from .capture import capture_output
from .compiler import build_ext_command, compile_command, compiler_fingerprint, distutils

FORMAT_VERSION = 1
ENV_SWITCH = "CYSCOPE_SHARED_UTILITY"
EXT_SUFFIX = importlib.machinery.EXTENSION_SUFFIXES[0]
RECIPE_SUFFIX = ".utility.json"  # beside a cell's module: which shared module it imports
_PREFIX_MAP = "-fdebug-prefix-map="


class UtilityUnavailable(Exception):
    """The shared module could not be built or loaded; ``output`` says why."""

    def __init__(self, message: str, output: str = ""):
        super().__init__(message)
        self.output = output


def _cython_version() -> tuple[int, ...]:
    from Cython import __version__

    return tuple(int(p) for p in __version__.split(".")[:2] if p.isdigit())


def available() -> bool:
    """This Cython can share its utility code, and the user has not switched it off."""
    if os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "no", "false", "off"):
        return False
    if _cython_version() < (3, 1):
        return False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import Cython.Build.SharedModule  # noqa: F401
    except ImportError:
        return False
    return True


def wanted(opts) -> bool:
    return not opts.pgo and available()


@dataclass(frozen=True)
class Utility:
    """One shared utility module: its cache key, module name, language and compiler flags."""

    key: str
    name: str
    language: str  # "c" or "c++"
    compile_args: tuple

    @property
    def entry(self) -> str:
        return "utility-" + self.key

    def recipe(self) -> dict:
        return {"v": FORMAT_VERSION, "key": self.key, "name": self.name, "language": self.language,
                "compile_args": list(self.compile_args)}  # fmt: skip

    @classmethod
    def from_recipe(cls, data: dict) -> Utility:
        # The cell's C imports exactly this name: keep it, even if the settings moved since.
        return cls(data["key"], data["name"], data["language"], tuple(data["compile_args"]))

    @classmethod
    def make(cls, language: str, compile_args) -> Utility:
        from Cython import __version__

        args = tuple(a for a in compile_args if not a.startswith(_PREFIX_MAP))  # names the build folder
        material = {
            "format": FORMAT_VERSION,
            "cython": __version__,
            "python": [sys.version, sys.executable, sys.implementation.cache_tag],
            "compiler": compiler_fingerprint(),
            "language": language,
            "compile_args": list(args),
        }
        key = hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode("utf-8")).hexdigest()
        return cls(key=key, name=f"_cyscope_utility_{key[:16]}", language=language, compile_args=args)


def for_build(language: str, compile_args) -> Utility:
    return Utility.make(language, compile_args)


# Background builds of this process, by entry folder, and how many were started: a build that
# failed (a cache folder set aside meanwhile, a compiler killed) is tried again by a later
# cell, but a build that always fails is not started at every cell.
_running: dict[str, subprocess.Popen] = {}
_attempts: dict[str, int] = {}
MAX_ATTEMPTS = 3


def ready(tag_dir: str, utility: Utility) -> str | None:
    """The folder of the utility's cache entry if it is built and trusted; else None, and
    the module is built in the background for the cells that follow."""
    if cache.trusted_module(tag_dir, utility.entry, utility.name + EXT_SUFFIX) is not None:
        return os.path.join(tag_dir, utility.entry)
    _start_background(tag_dir, utility)
    return None


def _start_background(tag_dir: str, utility: Utility) -> None:
    where = os.path.join(tag_dir, utility.entry)  # per cache folder: CYSCOPE_CACHE_DIR may change
    running = _running.get(where)
    if running is not None and running.poll() is None:
        return  # still building
    if _attempts.get(where, 0) >= MAX_ATTEMPTS:
        return
    _attempts[where] = _attempts.get(where, 0) + 1
    # A process of its own: the build takes seconds (the whole of Cython's utility code at
    # the cell's -O level), must not hold the kernel's GIL or capture its output, and the
    # memory tracker has nothing to see in it.
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    main = "import sys; from cyscope.cython.utility import _main; sys.exit(_main(sys.argv[1:]))"
    argv = [sys.executable, "-c", main, tag_dir, json.dumps(utility.recipe())]
    try:
        proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its compiler is stopped with it (see _stop_background)
        )
    except OSError:
        return  # the cells keep their own utility code
    if not _running:
        atexit.register(_stop_background)
    _running[where] = proc


def wait(timeout: float | None = None) -> bool:
    """Wait for this process's background builds; True when none is still running."""
    deadline = None if timeout is None else time.monotonic() + timeout
    for proc in list(_running.values()):
        try:
            proc.wait(None if deadline is None else max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
    return True


def _stop_background() -> None:
    """At exit: a half-done build is worth nothing to the next kernel (it starts its own)."""
    stopped = []
    for proc in _running.values():
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
                stopped.append(proc)
    for proc in stopped:  # it removes its temporary folder on the way out: let it
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(10)


def _main(argv: list[str]) -> int:
    """``_main([TAG_DIR, RECIPE])`` in a child process: build one shared module (a background build)."""
    with contextlib.suppress(OSError):
        os.nice(10)  # the user's cells come first
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # cleans its temporary folder on the way out
    tag_dir, recipe = argv
    try:
        ensure_built(tag_dir, Utility.from_recipe(json.loads(recipe)))
    except UtilityUnavailable as exc:
        print(f"{exc}\n{exc.output}", file=sys.stderr)
        return 1
    return 0


def ensure_built(tag_dir: str, utility: Utility) -> str:
    """The folder of the utility's cache entry, built now if it is not there (or not trusted)."""
    so_name = utility.name + EXT_SUFFIX
    if cache.trusted_module(tag_dir, utility.entry, so_name) is None:
        _build(tag_dir, utility)
        if cache.trusted_module(tag_dir, utility.entry, so_name) is None:
            raise UtilityUnavailable(f"the shared utility module {utility.name} was built but is not in the cache")
    return os.path.join(tag_dir, utility.entry)


def pch_dir(entry_dir: str) -> str | None:
    """The entry's ``pch`` folder if it holds a precompiled ``Python.h`` no other user could
    have touched (gcc reads it as code of the cell), else None: the cell then reads the real one."""
    path = os.path.join(entry_dir, "pch")
    try:
        with opened_dir(entry_dir, private_from=os.path.dirname(os.path.dirname(entry_dir))) as entry_fd:
            pch_fd = check_dir_at(entry_fd, "pch", path)
            try:
                for name in ("Python.h", "Python.h.gch"):
                    check_file_at(pch_fd, name, os.path.join(path, name))
            finally:
                os.close(pch_fd)
    except OSError:  # missing, or untrusted (UntrustedPath is an OSError)
        return None
    return path


def load_for(tag_dir: str, cell_dir: str, module_name: str, quietly=contextlib.nullcontext):
    """Load the shared module the cell ``module_name`` in ``cell_dir`` imports, if it imports one.

    Called before the cell itself is loaded (the cell imports the shared module by name
    when it loads). A shared module missing from the cache, untrusted or failing to load
    is built again (inside ``quietly()``: the memory tracker's pause).
    """
    try:
        with open(os.path.join(cell_dir, module_name + RECIPE_SUFFIX), encoding="utf-8") as f:
            utility = Utility.from_recipe(json.load(f))
    except FileNotFoundError:
        return None
    loaded = sys.modules.get(utility.name)
    if loaded is not None:
        return loaded
    from .build import _load

    for attempt in (1, 2):
        entry_dir = os.path.join(tag_dir, utility.entry)
        if cache.trusted_module(tag_dir, utility.entry, utility.name + EXT_SUFFIX) is None:
            with quietly():
                ensure_built(tag_dir, utility)
        try:
            return _load(utility.name, os.path.join(entry_dir, utility.name + EXT_SUFFIX))
        except ImportError as exc:
            if attempt == 2:
                raise
            cache.set_aside(tag_dir, utility.entry, f"its module does not load: {exc}")
    return None


def _build(tag_dir: str, utility: Utility) -> None:
    from Cython.Build.SharedModule import generate_shared_module
    from Cython.Compiler.Main import CompilationOptions, default_options

    cplus = utility.language == "c++"
    _D, Extension, _b, CCompilerError, DistutilsError, _l = distutils()
    tmp = tempfile.mkdtemp(prefix=".build-", dir=tag_dir)
    cap = None
    try:
        c_file = os.path.join(tmp, utility.name + (".cpp" if cplus else ".c"))
        with capture_output() as cap:
            try:
                # The module is named after the file. (Naming it as the one to import from
                # here would make it import from itself, and leave its memoryview code out.)
                options = CompilationOptions(default_options, shared_c_file_path=c_file, cplus=cplus, language_level=3)
                err, _ = generate_shared_module(options)
                if err or not os.path.exists(c_file):
                    raise UtilityUnavailable("Cython could not write the shared utility module")
                ext = Extension(
                    utility.name,
                    [c_file],
                    extra_compile_args=[*utility.compile_args, "-w"],  # Cython's own code: its warnings are noise
                    language=utility.language,
                )
                build_ext_command(ext, tmp, os.path.join(tmp, "build")).run()
            except (CCompilerError, DistutilsError) as exc:
                raise UtilityUnavailable(f"the shared utility module did not compile: {exc}") from None
        _precompile_python_h(tmp, utility)
        shutil.rmtree(os.path.join(tmp, "build"), ignore_errors=True)
        with open(os.path.join(tmp, "recipe.json"), "w", encoding="utf-8") as f:
            json.dump(utility.recipe(), f)
        cache.publish(tmp, tag_dir, utility.entry, utility.name + EXT_SUFFIX)
    except UtilityUnavailable as exc:
        exc.output = cap.text if cap is not None else ""
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _precompile_python_h(folder: str, utility: Utility) -> None:
    """``pch/Python.h`` (which reads the real one) and its precompiled form, best effort."""
    pch = os.path.join(folder, "pch")
    os.mkdir(pch, 0o700)
    header = os.path.join(pch, "Python.h")
    with open(header, "w", encoding="utf-8") as f:
        # Cython's C defines PY_SSIZE_T_CLEAN (empty) before including Python.h: the
        # precompiled header must be made under the same definition to be used.
        f.write("#ifndef PY_SSIZE_T_CLEAN\n#define PY_SSIZE_T_CLEAN\n#endif\n#include_next <Python.h>\n")
    try:
        argv = compile_command(utility.language)
    except Exception:  # an unusual distutils: no precompiled header, nothing else changes
        return
    kind = "c++-header" if utility.language == "c++" else "c-header"
    argv += [*utility.compile_args, "-DPY_SSIZE_T_CLEAN=", "-w", "-x", kind, header, "-o", header + ".gch"]
    try:
        done = subprocess.run(argv, capture_output=True, timeout=300, check=False)
    except (OSError, subprocess.SubprocessError):
        return
    if done.returncode != 0 and os.path.exists(header + ".gch"):
        os.unlink(header + ".gch")
