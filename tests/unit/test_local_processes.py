"""Recorded background processes: stop exactly what was started, never a stranger."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import sys
from pathlib import Path

from pkiwarden.local import processes as procs

SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def test_stop_ends_the_started_process_and_drops_its_record(tmp_path: Path) -> None:
    record = procs.start(tmp_path, "sleeper", SLEEP)
    assert procs.is_running(record)
    assert procs.records(tmp_path) == [record]
    assert procs.stop_all(tmp_path) == [f"sleeper: stopped pid {record.pid}"]
    assert not procs.is_running(record)
    assert procs.records(tmp_path) == []


def test_a_reused_pid_is_never_signalled(tmp_path: Path) -> None:
    record = procs.start(tmp_path, "sleeper", SLEEP)
    try:
        # Same pid, another start time: what a recycled pid looks like.
        stranger = dataclasses.replace(record, start_ticks=record.start_ticks - 1)
        (tmp_path / "run" / "sleeper.json").write_text(json.dumps(dataclasses.asdict(stranger)))
        assert procs.stop(tmp_path, "sleeper") == f"sleeper: pid {record.pid} already exited"
        assert procs.is_running(record)
    finally:
        os.kill(record.pid, signal.SIGKILL)
        os.waitpid(record.pid, 0)


def test_output_goes_to_the_named_log(tmp_path: Path) -> None:
    record = procs.start(tmp_path, "echo", [sys.executable, "-c", "print('hello from child')"])
    os.waitpid(record.pid, 0)
    assert "hello from child" in procs.tail(procs.log_path(tmp_path, "echo"))
    procs.stop(tmp_path, "echo")


def test_stop_all_stops_the_servers_last_in_the_order_given(tmp_path: Path) -> None:
    """Clients go first: a server stopped under open connections waits for them."""
    for name in ("server", "store", "client"):
        procs.start(tmp_path, name, [sys.executable, "-c", "import time; time.sleep(60)"])
    lines = procs.stop_all(tmp_path, last=("server", "store"))
    assert [line.split(":")[0] for line in lines] == ["client", "server", "store"]
