"""The one wait for local processes: it fails fast, and says why with the process's log."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pkiwarden.local import processes as procs
from pkiwarden.local.readiness import NotReadyError, free_ports, wait_until_ready


def test_a_process_that_exits_fails_the_wait_with_its_last_log_lines(tmp_path: Path) -> None:
    argv = [sys.executable, "-c", "print('port already taken'); raise SystemExit(3)"]
    procs.start(tmp_path, "quitter", argv)
    with pytest.raises(NotReadyError) as raised:
        wait_until_ready(tmp_path, lambda: False, ["quitter"], timeout=30)
    assert "quitter" in str(raised.value)
    assert "exited during start-up" in str(raised.value)
    assert "port already taken" in str(raised.value)


def test_a_process_that_never_gets_ready_fails_after_the_timeout(tmp_path: Path) -> None:
    procs.start(tmp_path, "sleeper", [sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with pytest.raises(NotReadyError, match="sleeper was not serving within 0 s"):
            wait_until_ready(tmp_path, lambda: False, ["sleeper"], what="serving", timeout=0.3)
    finally:
        procs.stop_all(tmp_path)


def test_a_ready_check_returns_at_once(tmp_path: Path) -> None:
    wait_until_ready(tmp_path, lambda: True, ["never-started"], timeout=0)


def test_free_ports_taken_together_differ() -> None:
    ports = free_ports(5)
    assert len(set(ports)) == 5
    assert all(port > 0 for port in ports)
