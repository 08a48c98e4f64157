"""The crash catcher in a real ipykernel: cells that really crash the kernel (NULL in a
helper, abort(), division by zero, a prange worker, strlen(NULL)), the kernel restarted
the way JupyterLab does it (same connection file), and the report read back in the new
kernel with ``cyscope.crash_reports()``. Also: no gdb, gdb refused by ptrace (a seccomp
filter, as in a container without SYS_PTRACE), ``--catch-crashes``, and the ``hello``
that carries an unseen report to the frontend. Every report is checked against the
strict (sender's) view of protocol/crash.schema.json.

Runs on both interpreters (the project venv: Cython 3, ipykernel 7; Debian's python3:
Cython 0.29, ipykernel 6). gdb comes from scripts/setup.sh.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import textwrap
import time
from pathlib import Path

import pytest
from protocol_views import sender_schema

jupyter_client = pytest.importorskip("jupyter_client")
jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[2]

if shutil.which("gdb") is None:
    pytest.fail("gdb is not installed: scripts/setup.sh installs it (apt install gdb)", pytrace=False)

# The %%cython cell every crash below comes from. Line numbers are cell lines (the
# %%cython line is 1): null_deref calls read_at from line 10.
CELL = """\
%%cython {options}
from libc.stdlib cimport abort
from libc.string cimport strlen
from cython.parallel import prange
cdef int read_at(int *p, int n) noexcept nogil:
    return p[n]
ctypedef int (*reader_t)(int *, int) noexcept nogil
cdef reader_t reader = read_at  # through a pointer: an optimised build cannot inline it
def null_deref(int n, size_t address=0):
    return reader(<int *>address, n)

def do_abort():
    abort()

cdef extern from *:
    '''
    /* noipa: the compiler may not specialise it for a constant 0 (and trap instead) */
    static __attribute__((noipa)) int c_divide(int a, int b) { return a / b; }
    '''
    int c_divide(int a, int b) nogil

def divide(int a, int b):
    return c_divide(a, b)

def length(size_t address):
    cdef const char *s = <const char *>address
    return strlen(s)

def in_worker(int n, size_t address=0):
    cdef int i
    cdef int *p = <int *>address
    for i in prange(n, nogil=True, num_threads=2, schedule='static'):
        if i == n - 1:
            p[i] = i
    return n
"""
LINES = CELL.splitlines()
CALL_LINE = 10
assert "return reader(<int *>address, n)" in LINES[CALL_LINE - 1]
HELPER_LINE = LINES.index("    return p[n]") + 1
ABORT_LINE = LINES.index("    abort()") + 1
DIVIDE_LINE = LINES.index("    return c_divide(a, b)") + 1
STRLEN_LINE = LINES.index("    return strlen(s)") + 1
WORKER_LINE = LINES.index("            p[i] = i") + 1
OPENMP = "--compile-args=-fopenmp --link-args=-fopenmp"


def cell_source(options: str) -> str:
    return CELL.replace("{options}", options, 1)


CATCH_CELL = """\
%%cython --catch-crashes
cdef int read_at(int *p, int n) nogil:
    return p[n]

def guarded_crash(int n, size_t address=0):
    return read_at(<int *>address, n)
"""


@pytest.fixture(scope="module")
def crash_validator():
    schema = sender_schema("crash.schema.json")
    return jsonschema.validators.validator_for(schema)(schema)


def check_schema(validator, report: dict) -> dict:
    errors = sorted(validator.iter_errors(report), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:5])
    return report


class CrashKernel:
    """A real kernel that may crash; restarts it as JupyterLab does (same connection file)."""

    def __init__(self, tmp: Path, env: dict | None = None):
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "python-shim"), str(ROOT / "test" / "python")])
        self.env["CYSCOPE_CACHE_DIR"] = str(tmp / "cache")
        self.env["CYSCOPE_CRASH_DIR"] = str(tmp / "crash")
        # Correctness here, not speed (scripts/bench_crash.py measures that): a
        # busy machine must not turn gdb's report into the in-process one.
        self.env["CYSCOPE_CRASH_TIMEOUT"] = "30"
        self.env.update(env or {})
        self.km = jupyter_client.KernelManager()
        self.km.kernel_spec_manager.ensure_native_kernel = True
        self.km.kernel_name = "python3"
        self.km.start_kernel(env=self.env, cwd=str(tmp))
        self.kc = self.km.client()
        self.kc.start_channels()
        self.kc.wait_for_ready(timeout=90)
        self.load()

    def execute(self, code: str, timeout: float = 300) -> tuple[str, list[dict]]:
        """Run code; (reply status, its IOPub messages)."""
        msg_id = self.kc.execute(code)
        messages = []
        while True:
            msg = self.kc.get_iopub_msg(timeout=timeout)
            if msg["parent_header"].get("msg_id") != msg_id:
                continue
            messages.append(msg)
            if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                break
        reply = self.kc.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = self.kc.get_shell_msg(timeout=60)
        return reply["content"]["status"], messages

    def run(self, code: str) -> str:
        status, messages = self.execute(code)
        text = "".join(_text(m) for m in messages)
        assert status == "ok", text
        return text

    def load(self) -> None:
        self.run("%load_ext cyscope")

    def crash(self, code: str, timeout: float = 60) -> float:
        """Run code that kills the kernel; wait for it to die; restart it. Returns seconds until death."""
        start = time.monotonic()
        self.kc.execute(code)
        while self.km.is_alive():
            assert time.monotonic() - start < timeout, f"the kernel did not die within {timeout} s"
            time.sleep(0.05)
        died = time.monotonic() - start
        self.km.restart_kernel(now=True)
        self.kc.wait_for_ready(timeout=90)
        self.load()
        return died

    def reports(self) -> list[dict]:
        out = self.run("import cyscope, json; print(json.dumps(cyscope.crash_reports()))")
        return json.loads(out.strip().splitlines()[-1])

    def close(self) -> None:
        self.kc.stop_channels()
        self.km.shutdown_kernel(now=True)


def _text(msg: dict) -> str:
    kind, content = msg["msg_type"], msg["content"]
    if kind == "stream":
        return content["text"]
    if kind in ("execute_result", "display_data"):
        return content["data"].get("text/plain", "") + "\n"
    if kind == "error":
        return f"{content['ename']}: {content['evalue']}\n" + "\n".join(content.get("traceback", []))
    return ""


def cell_frames(report: dict) -> list[dict]:
    return [f for f in report["frames"] if f["kind"] == "cython"]


def cell_lines(report: dict) -> list[int]:
    return [f["cell"]["line"] for f in cell_frames(report)]


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    k = CrashKernel(tmp_path_factory.mktemp("crash-kernel"))
    k.run(cell_source(OPENMP))
    yield k
    k.close()


def crash_and_read(kernel: CrashKernel, code: str, cell: str) -> dict:
    before = len(kernel.reports())
    kernel.crash(code)
    reports = kernel.reports()
    assert len(reports) == before + 1, "no new report after the crash"
    kernel.run(cell)  # the restarted kernel has nothing loaded: build (cache hit) again
    return reports[-1]


def test_null_in_a_helper_called_from_line_10(kernel, crash_validator):
    report = check_schema(crash_validator, crash_and_read(kernel, "null_deref(3)", cell_source(OPENMP)))
    assert report["source"] == "gdb", report["tracer"]
    assert report["tracer"]["status"] == "ok"
    assert report["signal"]["name"] == "SIGSEGV"
    assert report["signal"]["code"] == "SEGV_MAPERR"
    assert report["signal"]["address"] == "0xc"  # p[3] with p NULL
    frames = cell_frames(report)
    # innermost first: the helper's line, then the line that called it
    assert cell_lines(report)[:2] == [HELPER_LINE, CALL_LINE], cell_lines(report)
    assert frames[0]["function"] == "read_at"
    assert frames[1]["function"] == "null_deref"
    assert frames[1]["source"].strip() == "return reader(<int *>address, n)"
    # the cell that built the module, and the cell that was running (the one that called null_deref)
    built = frames[0]["cell"]["execution_count"]
    assert isinstance(built, int) and built >= 1
    assert report["cell"]["running"] is True
    assert report["cell"]["execution_count"] > built
    # the running cell's own Python frame follows the compiled ones
    python = [f for f in report["frames"] if f["kind"] == "python"]
    assert python[0]["function"] == "<module>"
    assert python[0]["cell"]["execution_count"] == report["cell"]["execution_count"]
    assert python[0]["cell"]["line"] == 1
    assert report["thread"]["main"] is True
    assert report["threads"], "gdb lists the kernel's other threads"
    assert report["kernel"]["connection_file"] == kernel.km.connection_file


def test_abort_gives_sigabrt(kernel, crash_validator):
    report = check_schema(crash_validator, crash_and_read(kernel, "do_abort()", cell_source(OPENMP)))
    assert report["signal"]["name"] == "SIGABRT"
    assert report["signal"]["address"] is None
    assert ABORT_LINE in cell_lines(report)
    assert any((f["function"] or "").startswith(("abort", "__GI_abort")) for f in report["frames"])


def test_integer_division_by_zero_gives_sigfpe(kernel, crash_validator):
    report = check_schema(crash_validator, crash_and_read(kernel, "divide(7, 0)", cell_source(OPENMP)))
    assert report["signal"]["name"] == "SIGFPE"
    assert report["signal"]["code"] == "FPE_INTDIV"
    # the C function that divided, then the cell line that called it
    assert report["frames"][0]["function"] == "c_divide"
    assert cell_lines(report)[0] == DIVIDE_LINE
    assert cell_frames(report)[0]["function"] == "divide"


def test_crash_in_a_prange_worker_names_the_thread(kernel, crash_validator):
    report = check_schema(crash_validator, crash_and_read(kernel, "in_worker(4)", cell_source(OPENMP)))
    assert report["signal"]["name"] == "SIGSEGV"
    thread = report["thread"]
    assert thread["main"] is False and thread["tid"] != report["pid"]
    assert thread["openmp"] is True
    assert cell_lines(report)[0] == WORKER_LINE
    assert "OpenMP worker" in cell_frames(report)[0]["function"]
    # the main thread, waiting for its team, is among the others
    assert any(t["main"] for t in report["threads"])
    assert "OpenMP worker thread" in kernel_text(report)


def test_crash_inside_libc_shows_the_libc_frame_and_the_cell_line(kernel, crash_validator):
    report = check_schema(crash_validator, crash_and_read(kernel, "length(0)", cell_source(OPENMP)))
    assert report["signal"]["name"] == "SIGSEGV"
    first = report["frames"][0]
    assert first["kind"] == "native" and "strlen" in (first["function"] or ""), first
    assert "libc" in os.path.basename(first["module"])
    assert cell_lines(report)[0] == STRLEN_LINE


def kernel_text(report: dict) -> str:
    from cyscope.crash import render

    return render.to_text(report)


def test_the_restarted_kernel_sends_the_report_once_in_hello(kernel):
    kernel.run("from cyscope import crash; crash.hello_fields()")  # earlier tests' reports: sent
    kernel.crash("null_deref(3)")
    first = kernel.run("from cyscope import crash; import json; print(json.dumps(crash.hello_fields()))")
    fields = json.loads(first.strip().splitlines()[-1])
    assert len(fields["crashes"]) == 1
    entry = fields["crashes"][0]
    assert entry["report"]["signal"]["name"] == "SIGSEGV"
    assert entry["text"].startswith("Kernel crashed: SIGSEGV")
    assert f"line {HELPER_LINE}" in entry["text"]
    again = kernel.run("print(json.dumps(crash.hello_fields()))")
    assert json.loads(again.strip().splitlines()[-1]) == {}
    kernel.run(cell_source(OPENMP))


def test_debug_build_shows_the_cells_c_locals(tmp_path, crash_validator):
    kernel = CrashKernel(tmp_path)
    try:
        cell = cell_source(f"--debug {OPENMP}")
        kernel.run(cell)
        kernel.crash("null_deref(3)")
        report = check_schema(crash_validator, kernel.reports()[-1])
    finally:
        kernel.close()
    helper, caller = cell_frames(report)[:2]
    assert (helper["cell"]["line"], caller["cell"]["line"]) == (HELPER_LINE, CALL_LINE)
    # named as in the cell, with their C types, arguments first
    assert [(v["name"], v["type"], v["value"]) for v in helper["locals"]] == [("p", "int *", "NULL"), ("n", "int", "3")]
    assert all(v["argument"] and not v["optimized_out"] for v in helper["locals"])
    variables = {v["name"]: v for v in caller["locals"]}
    assert variables["n"]["value"] == "3" and variables["n"]["type"] == "int"
    assert variables["address"]["value"] == "0" and variables["address"]["type"] == "size_t"
    assert "CellCrashed" not in kernel_text(report)
    assert "p = NULL  (int *, argument)" in kernel_text(report)


def test_without_gdb_the_kernel_writes_the_report_itself(tmp_path, crash_validator):
    kernel = CrashKernel(tmp_path, env={"CYSCOPE_GDB": "none"})
    try:
        kernel.run(cell_source(OPENMP))
        kernel.crash("null_deref(3)")
        report = check_schema(crash_validator, kernel.reports()[-1])
    finally:
        kernel.close()
    assert report["source"] == "in-process"
    assert report["tracer"]["status"] == "missing"
    assert "Install gdb" in report["tracer"]["message"] and "apt install gdb" in report["tracer"]["message"]
    assert_fallback_content(report)


def test_when_ptrace_is_refused_the_kernel_writes_the_report_itself(tmp_path, crash_validator):
    if platform.machine() != "x86_64":
        pytest.skip(f"the seccomp filter of this test is written for x86_64, not {platform.machine()}")
    kernel = CrashKernel(tmp_path)
    try:
        kernel.run(cell_source(OPENMP))
        kernel.run(DENY_PTRACE)
        kernel.crash("null_deref(3)")
        report = check_schema(crash_validator, kernel.reports()[-1])
    finally:
        kernel.close()
    assert report["source"] == "in-process"
    assert report["tracer"]["status"] == "refused", report["tracer"]
    assert "ptrace" in report["tracer"]["detail"]
    assert "SYS_PTRACE" in report["tracer"]["message"]
    assert_fallback_content(report)


def assert_fallback_content(report: dict) -> None:
    assert report["signal"]["name"] == "SIGSEGV" and report["signal"]["address"] == "0xc"
    assert report["symbolized"] is True
    # the faulting pc's frame and its callers, named through the line map
    assert report["frames"][0]["exact"] is True
    assert cell_lines(report)[:2] == [HELPER_LINE, CALL_LINE], cell_lines(report)
    assert report["cell"]["running"] is True
    assert report["threads"] == []


# A seccomp filter (all threads) that makes ptrace() fail with EPERM, as a container's
# default profile does without SYS_PTRACE; gdb, a child of the kernel, inherits it.
DENY_PTRACE = textwrap.dedent(
    """
    import ctypes
    _libc = ctypes.CDLL(None, use_errno=True)
    class _Filter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8), ("k", ctypes.c_uint32)]
    class _Prog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_Filter))]
    _rules = (_Filter * 6)(
        _Filter(0x20, 0, 0, 4),            # load the architecture
        _Filter(0x15, 0, 3, 0xC000003E),   # not x86_64: allow
        _Filter(0x20, 0, 0, 0),            # load the syscall number
        _Filter(0x15, 0, 1, 101),          # ptrace?
        _Filter(0x06, 0, 0, 0x00050001),   # fail with EPERM
        _Filter(0x06, 0, 0, 0x7FFF0000),   # allow
    )
    _prog = _Prog(6, _rules)
    assert _libc.prctl(38, 1, 0, 0, 0) == 0  # PR_SET_NO_NEW_PRIVS
    assert _libc.syscall(317, 1, 1, ctypes.byref(_prog)) == 0, ctypes.get_errno()  # seccomp, TSYNC
    """
)


def test_catch_crashes_raises_cellcrashed_and_the_kernel_lives(tmp_path, crash_validator):
    kernel = CrashKernel(tmp_path)
    try:
        kernel.run(CATCH_CELL)
        status, messages = kernel.execute("guarded_crash(3)")
        assert status == "error"
        error = next(m["content"] for m in messages if m["msg_type"] == "error")
        assert error["ename"] == "CellCrashed"
        assert "SIGSEGV" in error["evalue"]
        shown = [m["content"]["data"] for m in messages if m["msg_type"] == "display_data"]
        assert any("application/vnd.cyscope.crash.v1+json" in d for d in shown), "the report goes in the cell's output"
        # the kernel answers the next cell, and the guard works again
        assert kernel.run("print(6 * 7)").strip() == "42"
        status, _ = kernel.execute("guarded_crash(3)")
        assert status == "error"
        assert kernel.run("print(guarded_crash(0, 0) if False else 'alive')").strip() == "alive"
        out = kernel.run(
            "import cyscope\n"
            "try:\n"
            "    guarded_crash(3)\n"
            "except cyscope.CellCrashed as e:\n"
            "    print(e.report['caught'], e.report['signal']['name'], e.signal_number)"
        )
        assert out.strip().splitlines()[-1] == "True SIGSEGV 11"
        reports = kernel.reports()
    finally:
        kernel.close()
    assert len(reports) == 3 and all(r["caught"] for r in reports)
    for report in reports:
        check_schema(crash_validator, report)
    assert 6 in cell_lines(reports[-1])  # guarded_crash's line (read_at may be inlined into it)
