"""cyscope's %%cython: option parity with Cython's magic, build and load, line numbers, debug builds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
from cython_helpers import (
    ANN_MIME,
    _cy_session_shell,
    cache_root,
    cython_major,
    last_result,
    recorder,
    run_ok,
    shell,
    validate,
)

__all__ = ["_cy_session_shell", "cache_root", "recorder", "shell"]  # fixtures used by name

SUM_CELL = """\
%%cython{opts}
def tri(int n):
    cdef int i, s = 0
    for i in range(n):
        s += i
    return s

cdef class Counter:
    cdef public int count
    def bump(self, int by=1):
        self.count += by
        return self.count
"""


def test_build_load_and_names(shell):
    run_ok(shell, SUM_CELL.format(opts=""))
    assert shell.user_ns["tri"](5) == 10
    counter = shell.user_ns["Counter"]()  # a cdef class
    assert counter.bump() == 1 and counter.bump(4) == 5
    res = last_result(shell)
    assert os.path.isabs(res.so_path) and os.path.exists(res.so_path)
    assert res.module_name.startswith("_cyscope_magic_")
    assert res.module.__cyscope_build__ is res


def test_cell_lines_equal_pyx_lines_and_absolute_path(shell):
    run_ok(shell, SUM_CELL.format(opts=""))
    res = last_result(shell)
    with open(res.pyx_path) as f:
        pyx = f.read().splitlines()
    cell = SUM_CELL.format(opts="").splitlines()
    assert pyx[0] == ("" if cython_major() >= 3 else "# -*- coding: utf-8 -*-")  # stands for the %%cython line
    assert pyx[1:] == cell[1:]
    with open(res.c_path) as f:
        c_text = f.read()
    assert f'/* "{res.pyx_path}":3' in c_text  # absolute path in Cython's position comments
    # a runtime error points at the cell line, with the absolute .pyx path
    run_ok(shell, "%%cython\ndef boom():\n    x = 1\n    raise ValueError(x)\n")
    try:
        shell.user_ns["boom"]()
    except ValueError as exc:
        tb = exc.__traceback__
        while tb.tb_next:
            tb = tb.tb_next
        assert tb.tb_lineno == 4
        assert tb.tb_frame.f_code.co_filename == last_result(shell).pyx_path
    else:
        raise AssertionError("boom() did not raise")


def test_cache_hit_does_no_compiler_work(shell, monkeypatch):
    import Cython.Build
    from cyscope.cython import build, compiler, pipeline, translate

    run_ok(shell, SUM_CELL.format(opts=""))

    def forbidden(*a, **k):
        raise AssertionError("compiler machinery used on a cache hit")

    monkeypatch.setattr(compiler, "distutils", forbidden)
    monkeypatch.setattr(pipeline, "distutils", forbidden)
    monkeypatch.setattr(pipeline, "build", forbidden)
    monkeypatch.setattr(build.Builder, "_build", forbidden)
    monkeypatch.setattr(translate, "_cython", forbidden)
    monkeypatch.setattr(Cython.Build, "cythonize", forbidden)
    monkeypatch.setattr(subprocess, "Popen", forbidden)
    run_ok(shell, SUM_CELL.format(opts=""))
    assert last_result(shell).cache_hit


def test_edit_and_rerun_takes_effect(shell):
    run_ok(shell, "%%cython\ndef version():\n    return 1\n")
    first = last_result(shell)
    assert shell.user_ns["version"]() == 1
    run_ok(shell, "%%cython\ndef version():\n    return 2\n")
    assert shell.user_ns["version"]() == 2
    assert last_result(shell).key != first.key and not last_result(shell).cache_hit


def test_force_rebuilds(shell):
    cell = "%%cython {}\ndef forced():\n    return 'f'\n"
    run_ok(shell, cell.format(""))
    run_ok(shell, cell.format("-f"))
    assert not last_result(shell).cache_hit
    run_ok(shell, cell.format("--force"))
    assert not last_result(shell).cache_hit and shell.user_ns["forced"]() == "f"


def test_name_makes_module_importable_later(shell):
    run_ok(shell, "%%cython -n cyscope_named_mod\ndef answer():\n    return 42\n")
    run_ok(shell, "import cyscope_named_mod\nnamed_value = cyscope_named_mod.answer()\n")
    assert shell.user_ns["named_value"] == 42
    # an edit under the same name is picked up too (a fresh .so path, not the stale dlopen handle)
    run_ok(shell, "%%cython --name cyscope_named_mod\ndef answer():\n    return 43\n")
    run_ok(shell, "import cyscope_named_mod\nnamed_value = cyscope_named_mod.answer()\n")
    assert shell.user_ns["named_value"] == 43


def test_language_levels(shell):
    cell = "%%cython {}\ndef divide():\n    cdef int a = 7, b = 2\n    return a / b\n"
    run_ok(shell, cell.format("-3"))
    assert shell.user_ns["divide"]() == 3.5  # true division
    run_ok(shell, cell.format("-2"))
    assert shell.user_ns["divide"]() == 3  # Python 2 semantics: integer division


CPP_BODY = """\
from libcpp.vector cimport vector
def squares(int n):
    cdef vector[int] v
    for i in range(n):
        v.push_back(i * i)
    return list(v)
"""


def test_cplus_flag(shell):
    run_ok(shell, "%%cython -+\n" + CPP_BODY)
    assert shell.user_ns["squares"](4) == [0, 1, 4, 9]
    assert last_result(shell).c_path.endswith(".cpp")


def test_cplus_distutils_directive(shell):
    run_ok(shell, "%%cython\n# distutils: language = c++\n" + CPP_BODY.replace("squares", "squares2"))
    assert shell.user_ns["squares2"](3) == [0, 1, 4]
    assert last_result(shell).c_path.endswith(".cpp")


def test_cplus_long_option(shell):
    run_ok(shell, "%%cython --cplus\n" + CPP_BODY.replace("squares", "squares3"))
    assert shell.user_ns["squares3"](2) == [0, 1]


def test_compile_args_repeatable(shell):
    run_ok(
        shell,
        textwrap.dedent('''\
        %%cython -c=-DCY_A=40 --compile-args=-DCY_B=2
        cdef extern from *:
            """
            static int cy_sum(void) { return CY_A + CY_B; }
            """
            int cy_sum()
        def defined_sum():
            return cy_sum()
        '''),
    )
    assert shell.user_ns["defined_sum"]() == 42


def test_extern_math_with_lib_m_and_link_args(shell):
    run_ok(
        shell,
        textwrap.dedent("""\
        %%cython -l m --link-args=-Wl,--no-as-needed
        cdef extern from "math.h":
            double cos(double x)
            double sqrt(double x)
        def hyp(double a, double b):
            return sqrt(a * a + b * b) + cos(0.0) - 1.0
        """),
    )
    assert shell.user_ns["hyp"](3.0, 4.0) == pytest.approx(5.0)


def test_include_src_libdir_lib(shell, tmp_path):
    (tmp_path / "inc").mkdir()
    (tmp_path / "inc" / "cyhelper.h").write_text("static inline int helper_seven(void) { return 7; }\n")
    (tmp_path / "extra.c").write_text("int extra_add(int a, int b) { return a + b; }\n")
    libdir = tmp_path / "lib"
    libdir.mkdir()
    (tmp_path / "mylib.c").write_text("int mylib_triple(int x) { return 3 * x; }\n")
    subprocess.run(["gcc", "-fPIC", "-c", str(tmp_path / "mylib.c"), "-o", str(tmp_path / "mylib.o")], check=True)
    subprocess.run(["ar", "rcs", str(libdir / "libcymylib.a"), str(tmp_path / "mylib.o")], check=True)
    cell = textwrap.dedent(f"""\
        %%cython -I {tmp_path / "inc"} --include={tmp_path / "inc"} -S {tmp_path / "extra.c"} -L {libdir} --lib=cymylib
        cdef extern from "cyhelper.h":
            int helper_seven()
        cdef extern int extra_add(int a, int b)
        cdef extern int mylib_triple(int x)
        def combined():
            return extra_add(helper_seven(), mylib_triple(2))
        """)
    run_ok(shell, cell)
    assert shell.user_ns["combined"]() == 13
    # -S sources take part in the key: editing the file rebuilds
    (tmp_path / "extra.c").write_text("int extra_add(int a, int b) { return a + b + 100; }\n")
    os.utime(tmp_path / "extra.c", ns=(1, 1))
    run_ok(shell, cell)
    assert shell.user_ns["combined"]() == 113


def test_numpy_cimport_and_memoryviews(shell):
    numpy = pytest.importorskip("numpy")
    run_ok(
        shell,
        textwrap.dedent("""\
        %%cython
        cimport numpy as cnp
        cnp.import_array()
        def total(double[::1] values):
            cdef Py_ssize_t i
            cdef double s = 0
            for i in range(values.shape[0]):
                s += values[i]
            return s
        def ndim(cnp.ndarray arr):
            return arr.ndim
        """),
    )
    assert shell.user_ns["total"](numpy.arange(5, dtype=float)) == 10.0
    assert shell.user_ns["ndim"](numpy.zeros((2, 3))) == 2


PRANGE = """\
from cython.parallel cimport prange
cimport openmp
def psum(int n):
    cdef long s = 0
    cdef int i
    for i in prange(n, nogil=True):
        s += i
    return s
def threads():
    return openmp.omp_get_max_threads()
"""


def test_prange_openmp_with_flags(shell):
    run_ok(shell, "%%cython --compile-args=-fopenmp --link-args=-fopenmp\n" + PRANGE)
    assert shell.user_ns["psum"](1000) == 499500
    assert shell.user_ns["threads"]() >= 1


def test_prange_openmp_with_distutils_directives(shell):
    cell = "%%cython\n# distutils: extra_compile_args=-fopenmp\n# distutils: extra_link_args=-fopenmp\n" + PRANGE
    run_ok(shell, cell.replace("psum", "psum2"))
    assert shell.user_ns["psum2"](100) == 4950


def test_cython_directive_comment(shell):
    run_ok(shell, "%%cython\n# cython: boundscheck=False, wraparound=False\ndef first(int[:] a):\n    return a[0]\n")
    import array

    assert shell.user_ns["first"](array.array("i", [9, 8])) == 9


def test_annotate(shell, recorder):
    run_ok(shell, SUM_CELL.format(opts=" -a"))
    payloads = recorder.of(ANN_MIME)
    assert len(payloads) == 1
    data = payloads[0]
    validate(data, "annotation.schema.json")
    cell_lines = SUM_CELL.format(opts=" -a").splitlines()
    assert [e["line"] for e in data["lines"]] == list(range(1, len(cell_lines) + 1))
    by_line = {e["line"]: e for e in data["lines"]}
    assert by_line[1]["score"] == 0 and by_line[1]["code"] == ""
    assert by_line[2]["score"] > 0  # def tri(int n): argument parsing talks to Python
    assert by_line[5]["score"] == 0 and "__pyx_v_s" in by_line[5]["code"]  # s += i is pure C
    bundle = next(b for b in recorder.bundles if ANN_MIME in b)
    assert "<style" in bundle["text/html"] and "score-" in bundle["text/html"]
    assert "Raw output" not in bundle["text/html"]
    # annotation again on a cache hit
    recorder.clear()
    run_ok(shell, SUM_CELL.format(opts=" --annotate"))
    assert recorder.of(ANN_MIME)


def test_annotate_fullc(shell, recorder, capsys):
    run_ok(shell, SUM_CELL.format(opts=" --annotate-fullc"))
    data = recorder.of(ANN_MIME)[0]
    validate(data, "annotation.schema.json")
    html = next(b for b in recorder.bundles if ANN_MIME in b)["text/html"]
    if cython_major() >= 3:
        assert "PyInit_" in html or "PyMODINIT_FUNC" in html  # the complete C file is in there
    else:
        assert "needs Cython 3" in capsys.readouterr().err


def test_verbose_shows_commands_and_paths(shell, capsys):
    run_ok(shell, "%%cython --verbose\ndef verbose_fn():\n    return 'v'\n")
    out = capsys.readouterr().out
    res = last_result(shell)
    assert res.so_path in out
    assert "gcc" in out or "cc " in out  # the compiler command line


def test_pgo_trains_in_a_child_and_the_final_build_reads_the_profile(shell, tmp_path):
    """gcc writes the instrumented module's counters when its process exits: the training runs
    in a child process. -Werror=missing-profile makes the final build fail if it found no profile."""
    trained_by = tmp_path / "trained-by"
    run_ok(
        shell,
        textwrap.dedent(f"""\
        %%cython --pgo --compile-args=-Werror=missing-profile
        def work(int n):
            cdef long s = 0
            cdef int i
            for i in range(n):
                s += i % 7
            return s
        if "_pgo_" in __name__:
            import os
            for _ in range(20):
                work(10000)
            open({str(trained_by)!r}, "w").write(str(os.getpid()))
        """),
    )
    assert shell.user_ns["work"](14) == 42
    assert int(trained_by.read_text()) != os.getpid()  # trained in a child process
    res = last_result(shell)
    assert "profile count data file not found" not in res.output
    assert not res.diagnostics
    assert not any(name.startswith("_pgo_") or name == "pgo" for name in os.listdir(res.directory))


def test_pgo_training_failure_is_a_clear_warning(shell, recorder):
    run_ok(
        shell,
        textwrap.dedent("""\
        %%cython --pgo
        def still_works():
            return 3
        if "_pgo_" in __name__:
            raise RuntimeError("the training exploded")
        """),
    )
    assert shell.user_ns["still_works"]() == 3  # built without a profile
    res = last_result(shell)
    (warning,) = res.diagnostics
    assert warning["severity"] == "warning" and warning["line"] == 1
    assert warning["message"].startswith("--pgo: the training run failed (exit status 1")
    assert "the training exploded" in res.output


def test_debug_build_line_map(shell):
    cell = SUM_CELL.format(opts=" --debug")
    run_ok(shell, cell)
    res = last_result(shell)
    assert res.linemap_path and os.path.exists(res.linemap_path)
    assert res.c_path and os.path.exists(res.c_path)
    with open(res.linemap_path) as f:
        lm = json.load(f)
    assert lm["pyx"] == res.pyx_path and lm["c"] == res.c_path
    with open(res.c_path) as f:
        c_lines = f.read().splitlines()
    # cell line 5 is "s += i": its C statement sits at the mapped line
    assert "5" in lm["lines"]
    assert any("__pyx_v_s" in c_lines[n - 1] for n in lm["lines"]["5"])
    assert "1" not in lm["lines"]
    # and -O0 -g3 reached the compiler: the module carries DWARF line info
    with open(res.so_path, "rb") as f:
        assert b".debug_line" in f.read()


def test_cython_magic_replaced_in_both_orders(shell):
    import cyscope.cython

    def ours():
        return getattr(shell.magics_manager.magics["cell"]["cython"], "__self__", None).__class__.__name__

    assert ours() == "CyscopeCythonMagics"
    run_ok(shell, "%load_ext Cython")  # Cython registers its own...
    run_ok(shell, "%%cython\ndef after_load_ext():\n    return 1\n")  # ...ours is back before this cell
    assert ours() == "CyscopeCythonMagics"
    assert last_result(shell).module_name.startswith("_cyscope_magic_")
    cyscope.cython.unregister(shell)
    shell.run_line_magic("reload_ext", "Cython")
    assert ours() == "CythonMagics"
    cyscope.cython.register(shell)  # Cython first, cyscope second
    assert ours() == "CyscopeCythonMagics"


def test_sage_dirs_used_when_sage_loaded(shell, tmp_path, monkeypatch):
    import types

    from cyscope.cython import sage as sage_mod

    (tmp_path / "fakesage_types.pxd").write_text("cdef inline int fake_sage_answer():\n    return 42\n")
    (tmp_path / "fakesage.h").write_text("#define FAKESAGE_ANSWER 42\n")
    fake = types.ModuleType("sage.misc.cython")
    fake._standard_libs_libdirs_incdirs_aliases = lambda: (["m"], [], [str(tmp_path)], {})
    for name, mod in (("sage", types.ModuleType("sage")), ("sage.misc", types.ModuleType("sage.misc"))):
        monkeypatch.setitem(sys.modules, name, mod)
    monkeypatch.setitem(sys.modules, "sage.misc.cython", fake)
    monkeypatch.setattr(sage_mod, "_cached", None)
    try:
        run_ok(
            shell,
            textwrap.dedent("""\
            %%cython
            from fakesage_types cimport fake_sage_answer
            cdef extern from "fakesage.h":
                int FAKESAGE_ANSWER
            def sage_answer():
                return fake_sage_answer() + FAKESAGE_ANSWER
            """),
        )
        assert shell.user_ns["sage_answer"]() == 84
    finally:
        sage_mod._cached = None
    assert sage_mod.sage_config() is None or "sage" in sys.modules


def test_no_sage_import_in_plain_kernel(shell):
    run_ok(shell, "%%cython\ndef plain():\n    return 0\n")
    assert "sage" not in sys.modules


def test_compile_runs_outside_memory_tracking(shell, monkeypatch):
    import contextlib

    memory = pytest.importorskip("cyscope.memory")
    events = []

    @contextlib.contextmanager
    def spy():
        events.append("enter")
        yield
        events.append("exit")

    monkeypatch.setattr(memory, "untracked", spy)
    cell = "%%cython\ndef untracked_probe():\n    return 5\n"
    run_ok(shell, cell)
    assert events == ["enter", "exit"]
    run_ok(shell, cell)  # a cache hit compiles nothing, so needs no pause
    assert events == ["enter", "exit"]


def test_sage_config_from_sage_env_when_helper_missing(monkeypatch, tmp_path):
    import types

    from cyscope.cython import sage as sage_mod

    env = types.ModuleType("sage.env")
    env.SAGE_LOCAL = str(tmp_path / "local")
    env.sage_include_directories = lambda: [str(tmp_path / "inc")]
    env.cython_aliases = lambda: {
        "CBLAS_LIBRARIES": ["cblas"],
        "CBLAS_LIBDIR": ["/opt/blas/lib"],
        "CBLAS_INCDIR": ["/opt/blas/include"],
        "NTL_LIBDIR": [],
        "NTL_INCDIR": ["/opt/ntl/include"],
    }
    monkeypatch.setitem(sys.modules, "sage", types.ModuleType("sage"))
    monkeypatch.setitem(sys.modules, "sage.env", env)
    monkeypatch.setitem(sys.modules, "sage.misc", types.ModuleType("sage.misc"))
    monkeypatch.setitem(sys.modules, "sage.misc.cython", types.ModuleType("sage.misc.cython"))  # no helper
    monkeypatch.setattr(sage_mod, "_cached", None)
    try:
        config = sage_mod.sage_config()
        assert config.libraries == ["mpfr", "gmp", "gmpxx", "pari", "m", "ec", "gsl", "cblas", "ntl"]
        assert config.library_dirs == [str(tmp_path / "local" / "lib"), "/opt/blas/lib"]
        assert config.include_dirs == [str(tmp_path / "inc"), "/opt/blas/include", "/opt/ntl/include"]
    finally:
        sage_mod._cached = None
