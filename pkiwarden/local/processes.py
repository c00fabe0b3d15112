"""Background processes that outlive the command which started them, recorded
in a directory so that a later command stops exactly those and nothing else.

A pid alone is not an identity: once a process exits its pid can be reused by
an unrelated one. Each record therefore also keeps the process start time as
the kernel reports it (``/proc/PID/stat``, field 22); a pid whose start time
differs is not ours and is never signalled. This is Linux-specific, as is the
rest of the local control plane.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

RUN_DIR = "run"
LOG_DIR = "logs"
_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class ProcessRecord:
    """What is kept on disk about one started process."""

    name: str
    pid: int
    start_ticks: int
    argv: tuple[str, ...]
    log: str
    started_at: float


def _record_path(directory: Path, name: str) -> Path:
    return directory / RUN_DIR / f"{name}.json"


def log_path(directory: Path, name: str) -> Path:
    """Where the output of process ``name`` goes."""
    return directory / LOG_DIR / f"{name}.log"


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat from field 3 on (the command name may hold spaces)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` in clock ticks since boot, or None if gone."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def _alive(record: ProcessRecord) -> bool:
    """True while the recorded process exists and is not a zombie."""
    fields = _stat_fields(record.pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == record.start_ticks


def is_ours(record: ProcessRecord) -> bool:
    """True if ``record.pid`` still names the very process that was started."""
    return start_ticks(record.pid) == record.start_ticks


def is_running(record: ProcessRecord) -> bool:
    """True if the recorded process is still alive (and still ours)."""
    return _alive(record)


def _die_with_parent() -> None:
    """Ask the kernel to kill this child when the parent exits (used by tests)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def start(
    directory: Path,
    name: str,
    argv: Sequence[str],
    env: Mapping[str, str] | None = None,
    *,
    die_with_parent: bool = False,
) -> ProcessRecord:
    """Start ``argv`` in its own session, output to DIR/logs/NAME.log, and record it.

    Its own session means a Ctrl-C in the terminal of the starting command does
    not reach it, and its process group id equals its pid, so that stopping it
    also stops any workers it forked.
    """
    if _record_path(directory, name).exists():
        existing = read(directory, name)
        if existing is not None and is_running(existing):
            raise RuntimeError(f"{name} is already running as pid {existing.pid}")
    (directory / RUN_DIR).mkdir(parents=True, exist_ok=True)
    (directory / LOG_DIR).mkdir(parents=True, exist_ok=True)
    log = log_path(directory, name)
    preexec: Callable[[], None] | None = _die_with_parent if die_with_parent else None
    with log.open("ab") as out:
        process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            preexec_fn=preexec,  # noqa: PLW1509 - prctl only, no locks taken
        )
    # The child is not reaped until we wait for it, so its pid cannot be
    # reused before its start time is read.
    ticks = start_ticks(process.pid)
    record = ProcessRecord(
        name=name,
        pid=process.pid,
        start_ticks=ticks if ticks is not None else -1,
        argv=tuple(argv),
        log=str(log),
        started_at=time.time(),
    )
    # Popen would otherwise warn that the child is still running when the
    # object is collected; the record on disk is how we track it from now on.
    process.returncode = 0
    _record_path(directory, name).write_text(json.dumps(asdict(record), indent=2) + "\n")
    return record


def read(directory: Path, name: str) -> ProcessRecord | None:
    """The record of process ``name`` in ``directory``, if there is one."""
    try:
        data = json.loads(_record_path(directory, name).read_text())
    except FileNotFoundError:
        return None
    data["argv"] = tuple(data["argv"])
    return ProcessRecord(**data)


def records(directory: Path) -> list[ProcessRecord]:
    """All recorded processes, the most recently started first (the stop order)."""
    run = directory / RUN_DIR
    found = [read(directory, path.stem) for path in run.glob("*.json")] if run.is_dir() else []
    return sorted((r for r in found if r is not None), key=lambda r: r.started_at, reverse=True)


def _reap(pid: int) -> bool:
    """Collect the exit status if ``pid`` is our exited child, so no zombie is left."""
    try:
        done, _status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False
    return done == pid


def _signal_group(record: ProcessRecord, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(record.pid, sig)


def _wait_gone(record: ProcessRecord, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        if _reap(record.pid) or not _alive(record):
            _reap(record.pid)  # it may have turned zombie between the two checks
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)


def stop(directory: Path, name: str, timeout: float = 15.0) -> str:
    """Stop process ``name`` if it is still the one we started; drop its record.

    Returns a one-line account of what happened, for the command's output.
    """
    record = read(directory, name)
    if record is None:
        return f"{name}: not recorded"
    try:
        if not is_ours(record):
            return f"{name}: pid {record.pid} already exited"
        _signal_group(record, signal.SIGTERM)
        if _wait_gone(record, timeout):
            return f"{name}: stopped pid {record.pid}"
        _signal_group(record, signal.SIGKILL)
        _wait_gone(record, 5.0)
        return f"{name}: killed pid {record.pid} (did not stop within {timeout:.0f} s)"
    finally:
        _record_path(directory, name).unlink(missing_ok=True)


def stop_all(directory: Path, last: Sequence[str] = ()) -> list[str]:
    """Stop every recorded process, the most recently started first, ``last`` at the end.

    ``last`` names the servers the others talk to, in the order to stop them:
    a server stopped while its clients still hold connections waits for them.
    """
    names = [record.name for record in records(directory) if record.name not in last]
    names += [name for name in last if read(directory, name) is not None]
    return [stop(directory, name) for name in names]


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log, for an error message."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or "(the log is empty)"
