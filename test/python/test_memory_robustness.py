"""Tracker robustness: interpreter shutdown while attached, fork, thread churn,
bounded tracker memory, per-thread pause."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest
from cyscope import memory
from cyscope.memory import _lib

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def _tracker_required():
    assert memory.available(), memory.unavailable_reason()


def _run_script(code: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT / "python-shim")
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, capture_output=True, text=True, timeout=120
    )


def test_shutdown_while_attached_with_running_threads():
    proc = _run_script(
        """
        import threading, time
        import cyscope.memory as m
        tr = m.create_cell_tracker(exact=True, native=True)
        tr.cell_started(1, None)
        outer = m.track(exact=True)
        rep = outer.__enter__()       # never exited: the process ends attached
        stop = False
        def churn():
            while True:
                b = [bytearray(100) for _ in range(100)]
                del b
        for _ in range(3):
            threading.Thread(target=churn, daemon=True).start()
        data = [bytearray(1000) for _ in range(1000)]
        time.sleep(0.3)
        print("done", flush=True)
        """
    )
    assert proc.returncode == 0, proc.stderr
    assert "done" in proc.stdout


def test_fork_child_starts_detached():
    with memory.track() as report:
        keep = bytearray(300_000)
        pid = os.fork()
        if pid == 0:  # child: detached, every slot restored, still works
            ok = not _lib.totals().attached and _lib.scan_patched() == 0
            junk = [bytearray(1000) for _ in range(1000)]
            del junk
            os._exit(0 if ok else 3)
        _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    # fork() itself frees a little in the parent: check the block, not net.
    assert report.leaked_bytes >= 300_000
    del keep


def test_thread_churn_balances():
    def work():
        blocks = [bytearray(600) for _ in range(200)]
        del blocks

    with memory.track() as report:
        for _ in range(10):
            threads = [threading.Thread(target=work) for _ in range(20)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
    # Every thread exited: its counters were folded in; what they allocated
    # they freed (bytearray(600) is a malloc block: above pymalloc's limit).
    assert report.allocations >= 200 * 200
    assert report.frees >= 200 * 200
    assert abs(report.net_bytes) < 512 * 1024


def test_tracker_memory_is_bounded():
    def workload():
        blocks = [bytearray(700) for _ in range(20_000)]
        del blocks

    sizes = []
    for _ in range(4):
        with memory.track(exact=True):
            workload()
        sizes.append(_lib.totals().tracker_bytes)
    # Records of freed blocks are removed, stacks are interned once: repeating
    # the same work does not grow the tracker.
    assert sizes[-1] == sizes[1], sizes
    assert _lib.totals().live_records < 20_000


def test_untracked_is_per_thread():
    done = threading.Event()
    kept = []

    def other():
        kept.append(bytearray(400_000))
        done.set()

    with memory.track() as report:
        with memory.untracked():
            t = threading.Thread(target=other)
            t.start()
            t.join()
            mine = bytearray(400_000)
    assert done.is_set()
    # Only the other thread's block counts (net also sees small unrelated frees).
    assert 400_000 <= report.leaked_bytes < 800_000
    assert 350_000 <= report.net_bytes < 800_000
    del mine
    kept.clear()


def test_tables_grow_past_their_first_size():
    # 6,000 distinct functions, each allocating on its own line: more code
    # objects and stacks than the tracker's tables first hold (4,096 each),
    # so every one of them goes through a table growth.
    count = 6000
    namespace = {}
    source = "\n".join(f"def f{i}():\n    return bytearray(700)\n" for i in range(count))
    exec(compile(source, "cyscope_many_functions.py", "exec"), namespace)
    before = _lib.totals().stacks
    with memory.track(exact=True) as report:
        kept = [namespace[f"f{i}"]() for i in range(count)]
    assert _lib.totals().stacks - before >= count
    assert report.leaked_bytes >= count * 700
    lines = {g["line"] for g in report.leaks_by_line() if g["file"] == "cyscope_many_functions.py"}
    assert len(lines) >= 4097, len(lines)
    del kept


def test_200_forks_under_8_allocating_threads():
    # Every child starts detached and can allocate and exit; the parent stays
    # attached, and what the threads allocated they freed.
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            blocks = [bytearray(700) for _ in range(50)]
            big = bytearray(200_000)
            del blocks, big

    import warnings

    # The main thread waits for the GIL after each waitpid: a short switch
    # interval keeps 200 rounds from taking 20 s.
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    with memory.track() as report, warnings.catch_warnings():
        # 3.12+ warns that fork() in a threaded process may deadlock the child;
        # these children only call async-signal-safe code and the tracker.
        warnings.simplefilter("ignore", DeprecationWarning)
        threads = [threading.Thread(target=churn) for _ in range(8)]
        for t in threads:
            t.start()
        failed = []
        # Under ASan (scripts/native_sanitize.sh) a fork copies the shadow
        # memory's page tables: fewer forks there, the same checks.
        forks = 25 if "libasan" in os.environ.get("LD_PRELOAD", "") else 200
        try:
            for _ in range(forks):
                pid = os.fork()
                if pid == 0:
                    ok = not _lib.totals().attached and _lib.scan_patched() == 0
                    os._exit(0 if ok else 3)
                _, status = os.waitpid(pid, 0)
                if not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0):
                    failed.append(status)
            parent_attached = bool(_lib.totals().attached) and _lib.scan_patched() > 0
        finally:
            stop.set()
            for t in threads:
                t.join()
            sys.setswitchinterval(interval)
    assert failed == []
    assert parent_attached
    assert report.allocations > 8 * 50
    assert abs(report.net_bytes) < 1024 * 1024, report.net_bytes
