"""The monitor's own guarantees, with a scripted send, RSS and tracker (the
real ones are covered in a shell by test_extension and test_memory_cells)."""

from __future__ import annotations

import threading
import time

import pytest
from cyscope.memory_monitor import MemoryMonitor


class Recorder:
    """A send that takes its time over "running" samples, as a busy comm
    would: wide enough a window for a late sample to overtake the cell's end."""

    def __init__(self, slow_s: float = 0.0):
        self.slow_s = slow_s
        self.messages: list[dict] = []
        self.sampling = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, message: dict) -> None:
        if message["type"] == "sample" and message["running"]:
            self.sampling.set()
            time.sleep(self.slow_s)
        with self._lock:
            self.messages.append(message)


class FailingTracker:
    def __init__(self, fail_on: str):
        self.fail_on = fail_on

    def cell_started(self, execution_count, cell_id):
        if self.fail_on == "start":
            raise RuntimeError("tracker broke")

    def cell_finished(self):
        if self.fail_on == "finish":
            raise RuntimeError("tracker broke")
        return None

    def snapshot(self):
        return None


@pytest.fixture
def monitor_factory():
    made = []

    def make(**kwargs):
        monitor = MemoryMonitor(rss=lambda: 1000, **kwargs)
        monitor.start()
        made.append(monitor)
        return monitor

    yield make
    for monitor in made:
        monitor.stop()


def test_no_running_sample_arrives_after_the_cell_ends(monitor_factory):
    send = Recorder(slow_s=0.05)
    monitor = monitor_factory(send=send, interval_ms=1)
    monitor.cell_started(1, "a")
    # The sampler is now inside a slow send of a "running" sample.
    assert send.sampling.wait(5)
    monitor.cell_finished(True)
    time.sleep(0.2)
    ended = next(i for i, m in enumerate(send.messages) if m["type"] == "cell")
    late = [m for m in send.messages[ended:] if m["type"] == "sample" and m["running"]]
    assert late == [], send.messages
    last_sample = [m for m in send.messages if m["type"] == "sample"][-1]
    assert last_sample["running"] is False


@pytest.mark.parametrize("fail_on", ["start", "finish"])
def test_a_failing_tracker_still_closes_the_cell(monitor_factory, fail_on, caplog):
    send = Recorder()
    monitor = monitor_factory(send=send, tracker=FailingTracker(fail_on))
    monitor.cell_started(3, "c")
    record = monitor.cell_finished(True)
    assert record is not None and record["memory"] is None
    assert monitor.current_cell() is None
    assert [m["record"]["execution_count"] for m in send.messages if m["type"] == "cell"] == [3]
    assert "allocation tracker failed" in caplog.text


def test_the_sampler_survives_a_failing_rss_read():
    calls = []

    def flaky_rss():
        calls.append(1)
        if len(calls) == 2:  # the sampler's first read
            raise OSError("too many open files")
        return 1000

    send = Recorder()
    monitor = MemoryMonitor(send=send, interval_ms=1, rss=flaky_rss)
    monitor.start()
    try:
        monitor.cell_started(4, None)
        deadline = time.monotonic() + 5
        while not send.sampling.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert send.sampling.is_set(), "no sample after a failed RSS read"
        monitor.cell_finished(True)
    finally:
        monitor.stop()
