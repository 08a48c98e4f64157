"""cyscope inside a real IPython shell, with a recording stand-in for the comm.

The real comm over the real kernel protocol is covered by test/kernel (Node,
ZMQ) and test/e2e (browser); here the shell is real and the comm is a stub.
"""

import threading
import time

import pytest
from cyscope import protocol
from cyscope.extension import current_state


class RecordingComm:
    """Just enough of ipykernel's Comm for CommHub."""

    _ids = 0

    def __init__(self):
        RecordingComm._ids += 1
        self.comm_id = f"comm-{RecordingComm._ids}"
        self.sent = []
        self.lock = threading.Lock()
        self.on_msg_cb = None
        self.on_close_cb = None
        self.closed_with = None

    def send(self, data):
        with self.lock:
            self.sent.append(data)

    def on_msg(self, cb):
        self.on_msg_cb = cb

    def on_close(self, cb):
        self.on_close_cb = cb

    def close(self, data=None, **_):
        self.closed_with = data

    def deliver(self, data):
        self.on_msg_cb({"content": {"data": data}})

    def of_type(self, kind):
        with self.lock:
            return [m for m in self.sent if m["type"] == kind]


@pytest.fixture
def comm(shell):
    comm = RecordingComm()
    current_state(shell).hub._accept(comm, {})
    yield comm
    comm.on_close_cb({})


def open_comm(shell, connect=None):
    """A comm opened the way the frontend opens it, with `connect` as its open data."""
    comm = RecordingComm()
    current_state(shell).hub._accept(comm, {"content": {"data": connect if connect is not None else {}}})
    return comm


def connect_message(**settings):
    return {
        "v": 1,
        "type": "connect",
        "cyscope_version": "0.1.0",
        "capabilities": ["config", "configure.tracking", "configure.cython_magic", "goodbye"],
        **settings,
    }


def test_load_is_idempotent_and_registered(shell):
    assert "cyscope" in shell.extension_manager.loaded
    state = current_state(shell)
    shell.run_line_magic("load_ext", "cyscope")
    assert current_state(shell) is state


def test_hello_and_a_first_sample_on_open(comm, validate_message):
    (hello,) = comm.of_type("hello")
    validate_message(hello)
    assert hello["native"]["loaded"] is True
    # The panel gets a figure at once, before any cell runs.
    (sample,) = comm.of_type("sample")
    validate_message(sample)
    assert sample["running"] is False and sample["rss_bytes"] > 0
    assert sample["native"]["current_bytes"] > 0


def test_each_cell_gets_a_record_with_its_execution_count(shell, comm, validate_message):
    result = shell.run_cell("x = bytearray(30 * 1024 * 1024); x[::4096] = b'x' * len(x[::4096])", store_history=True)
    assert result.success
    cells = comm.of_type("cell")
    assert len(cells) == 1
    record = validate_message(cells[0])["record"]
    assert record["execution_count"] == result.execution_count
    assert record["success"] is True
    assert record["rss_after"] - record["rss_before"] > 20 * 1024 * 1024
    assert record["rss_peak"] >= record["rss_after"]
    # The native tracker's exact figures ride along: 30 MiB kept alive.
    memory = record["memory"]
    assert memory is not None
    # Net may be a little under: the shell frees some of its own blocks.
    assert memory["net_bytes"] >= 29 * 1024 * 1024
    assert memory["leaked_bytes"] >= 30 * 1024 * 1024
    assert memory["peak_bytes"] >= 30 * 1024 * 1024
    assert memory["allocations"] >= 1


def test_a_failing_cell_is_recorded_as_failed(shell, comm):
    result = shell.run_cell("1/0", store_history=True)
    assert not result.success
    (cell,) = comm.of_type("cell")
    assert cell["record"]["success"] is False


def test_silent_execution_leaves_no_record(shell, comm):
    shell.run_cell("y = 1", silent=True)
    assert comm.of_type("cell") == []


def test_samples_stream_while_a_cell_runs(shell, comm, validate_message):
    comm.deliver(protocol.parse_inbound({"v": 1, "type": "configure", "interval_ms": 50}))
    greeting = len(comm.of_type("sample"))
    result = shell.run_cell("import time; time.sleep(0.6)", store_history=True)
    samples = [validate_message(m) for m in comm.of_type("sample")[greeting:]]
    running = [s for s in samples if s["running"]]
    assert len(running) >= 6, f"only {len(running)} samples in 0.6 s at 50 ms"
    # Live samples name the cell by the number the user sees (IPython 8 and 9
    # count at different moments around pre_run_cell).
    assert {s["execution_count"] for s in samples} == {result.execution_count}
    assert samples[-1]["running"] is False
    # Nothing is sent while the kernel is idle.
    count = len(comm.of_type("sample"))
    time.sleep(0.3)
    assert len(comm.of_type("sample")) == count


def test_request_history_returns_every_record(shell, comm, validate_message):
    shell.run_cell("a = 1", store_history=True)
    shell.run_cell("b = 2", store_history=True)
    comm.deliver({"v": 1, "type": "request_history"})
    (history,) = comm.of_type("history")
    validate_message(history)
    assert len(history["records"]) >= 2


@pytest.mark.parametrize(
    "data",
    [
        None,
        "text",
        [],
        {"v": 1, "type": "bogus"},
        {"v": 9, "type": "configure"},
        {"v": 1, "type": "configure"},
        {"v": True, "type": "request_history"},
        {"v": 1, "type": ["request_history"]},
        {"v": 1, "type": {"request_history": 1}},
    ],
)
def test_malformed_messages_get_an_error_and_the_shell_carries_on(shell, comm, data, validate_message):
    comm.deliver(data)
    (error,) = comm.of_type("error")
    validate_message(error)
    # A protocol error naming the problem, never one of our own exceptions.
    assert not error["message"].startswith("internal error"), error
    assert shell.run_cell("z = 41 + 1", store_history=True).success
    assert shell.user_ns["z"] == 42
    assert comm.of_type("cell")


def test_an_internal_error_is_reported_briefly(shell, comm, validate_message, monkeypatch):
    state = current_state(shell)

    def fail(message):
        raise KeyError("k" * (10 * 1024 * 1024))

    monkeypatch.setattr(state.hub, "_on_message", fail)
    comm.deliver({"v": 1, "type": "request_history"})
    (error,) = comm.of_type("error")
    validate_message(error)
    assert error["message"].startswith("internal error: KeyError 'kkk")
    assert len(error["message"]) < 200


def test_a_broken_comm_does_not_break_the_cell(shell, comm):
    def explode(data):
        raise RuntimeError("socket gone")

    comm.send = explode
    assert shell.run_cell("w = 3", store_history=True).success


def test_reset_keeps_cyscope_running(shell, comm):
    shell.run_line_magic("reset", "-f")
    shell.run_cell("v = 1", store_history=True)
    assert comm.of_type("cell")


def test_unload_unregisters_events(shell):
    state = current_state(shell)
    shell.run_line_magic("unload_ext", "cyscope")
    assert current_state(shell) is None
    shell.run_cell("u = 1", store_history=True)
    assert state.monitor.records() == []
    shell.run_line_magic("load_ext", "cyscope")


# -- what each side understands, settings applied in the running kernel ------------------------


def test_hello_lists_the_kernels_capabilities(comm, validate_message):
    (hello,) = comm.of_type("hello")
    validate_message(hello)
    assert {"connect", "config", "configure.tracking", "configure.cython_magic", "goodbye"} <= set(
        hello["capabilities"]
    )


def test_an_older_frontend_gets_no_config_message(comm):
    # It opened with {} (no connect): it would not know the message type.
    assert [m["type"] for m in comm.sent] == ["hello", "sample"]


def test_a_frontend_that_lists_config_is_told_the_settings_in_effect(shell, validate_message):
    comm = open_comm(shell, connect_message(interval_ms=250))
    assert [m["type"] for m in comm.sent] == ["hello", "sample", "config"]
    config = validate_message(comm.of_type("config")[0])
    assert config["interval_ms"] == 250
    assert config["tracking"] == "sampled"
    assert config["tracking_modes"] == ["off", "sampled", "exact", "native"]
    assert config["cython_magic"] == "cyscope"
    assert config["problems"] == []


def test_a_newer_frontends_connect_is_accepted(shell, validate_reading):
    future = {
        **connect_message(),
        "capabilities": ["config", "teleport"],
        "added_in_v1_9": {"nested": True},
    }
    validate_reading(future)
    comm = open_comm(shell, future)
    assert comm.of_type("error") == []
    assert comm.of_type("config")


def test_a_malformed_connect_gets_an_error_and_the_comm_still_works(shell):
    comm = open_comm(shell, {"v": 1, "type": "connect", "cyscope_version": 3, "capabilities": []})
    (error,) = comm.of_type("error")
    assert "cyscope_version must be a string" in error["message"]
    assert comm.of_type("hello")
    comm.deliver({"v": 1, "type": "request_history"})
    assert comm.of_type("history")


def test_tracking_off_from_the_start_never_attaches_the_tracker(shell):
    state = current_state(shell)
    comm = open_comm(shell, connect_message(tracking="off"))
    assert state._tracker is None and state.tracking == "off"
    (sample,) = comm.of_type("sample")
    assert sample["native"] is None
    result = shell.run_cell("x = bytearray(1 << 20)", store_history=True)
    (cell,) = [c for c in comm.of_type("cell") if c["record"]["execution_count"] == result.execution_count]
    assert cell["record"]["memory"] is None


def test_configure_switches_tracking_in_the_running_kernel(shell, validate_message):
    comm = open_comm(shell, connect_message())

    def run_and_record():
        result = shell.run_cell("y = bytearray(3 << 20); y[::4096] = b'y' * len(y[::4096])", store_history=True)
        (cell,) = [c for c in comm.of_type("cell") if c["record"]["execution_count"] == result.execution_count]
        return validate_message(cell)["record"]

    assert run_and_record()["memory"]["exact"] is False
    for mode, exact, native in (("exact", True, False), ("native", False, True), ("sampled", False, False)):
        comm.deliver({"v": 1, "type": "configure", "interval_ms": 100, "tracking": mode})
        config = validate_message(comm.of_type("config")[-1])
        assert (config["tracking"], config["problems"]) == (mode, [])
        memory = run_and_record()["memory"]
        assert (memory["exact"], memory["native"]) == (exact, native), mode
        assert memory["allocated_bytes"] >= 3 << 20
    comm.deliver({"v": 1, "type": "configure", "interval_ms": 100, "tracking": "off"})
    assert comm.of_type("config")[-1]["tracking"] == "off"
    # A fresh sample says at once that there is no heap figure any more.
    assert comm.of_type("sample")[-1]["native"] is None
    assert run_and_record()["memory"] is None
    assert current_state(shell)._tracker is None


def test_tracking_forced_off_by_the_environment_is_reported(monkeypatch, validate_message):
    from IPython.testing.globalipapp import get_ipython

    monkeypatch.setenv("CYSCOPE_TRACKING", "0")
    ip = get_ipython()
    ip.run_line_magic("load_ext", "cyscope")
    try:
        comm = open_comm(ip, connect_message(tracking="exact"))
        config = validate_message(comm.of_type("config")[0])
        assert config["tracking"] == "off"
        assert config["tracking_modes"] == ["off"]
        assert "CYSCOPE_TRACKING=0" in config["problems"][0]
    finally:
        ip.run_line_magic("unload_ext", "cyscope")


def test_configure_hands_cython_back_its_own_magic_and_takes_it_again(shell):
    from cyscope.cython.magic import CyscopeCythonMagics
    from Cython.Build.IpythonMagic import CythonMagics

    def owner():
        return type(shell.magics_manager.magics["cell"]["cython"].__self__)

    comm = open_comm(shell, connect_message())
    assert owner() is CyscopeCythonMagics
    comm.deliver({"v": 1, "type": "configure", "interval_ms": 100, "cython_magic": "cython"})
    assert comm.of_type("config")[-1]["cython_magic"] == "cython"
    assert owner() is CythonMagics
    # cyscope's pre_run_cell reclaim is off: running a cell keeps Cython's.
    shell.run_cell("pass", store_history=True)
    assert owner() is CythonMagics
    comm.deliver({"v": 1, "type": "configure", "interval_ms": 100, "cython_magic": "cyscope"})
    assert owner() is CyscopeCythonMagics


def test_configure_refuses_an_unknown_mode_by_name(comm):
    comm.deliver({"v": 1, "type": "configure", "interval_ms": 100, "tracking": "everything"})
    (error,) = comm.of_type("error")
    assert error["message"] == "configure: tracking must be one of off, sampled, exact, native, got 'everything'"


def test_records_name_the_first_line_of_their_cell(shell, comm, validate_message):
    shell.run_cell("\n   \n  total = 6 * 7  # the answer\nprint(total)", store_history=True)
    shell.run_cell("z = '" + "w" * 5000 + "'", store_history=True)
    first, long = (validate_message(c)["record"] for c in comm.of_type("cell"))
    assert first["first_line"] == "total = 6 * 7  # the answer"
    assert len(long["first_line"]) == 200 and long["first_line"].startswith("z = 'www")


def test_unload_says_goodbye_on_every_comm(shell, validate_message):
    comm = open_comm(shell, connect_message())
    shell.run_line_magic("unload_ext", "cyscope")
    try:
        assert validate_message(comm.closed_with) == {"v": 1, "type": "goodbye", "reason": "unloaded"}
    finally:
        shell.run_line_magic("load_ext", "cyscope")
