"""Processes that may outlive the supervisor that started them: recognising them again, stopping them.

A pid alone is not an identity (pids are reused), so a process is recorded with its start time, and a
server found through its own pidfile must also carry our data directory on its command line before
anything is sent to it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from dataclasses import asdict, dataclass
from typing import Any

import psutil

# Start times are read from /proc (or sysctl) with clock-tick precision.
_SAME_START_TOLERANCE_S = 0.05


@dataclass(frozen=True)
class ProcessRecord:
    """A process the supervisor started, as written to its run file."""

    name: str
    pid: int
    started_at: float
    # The signal that asks this program to shut down cleanly (PostgreSQL: SIGINT, "fast" shutdown).
    stop_signal: int

    @classmethod
    def of(cls, name: str, pid: int, stop_signal: int) -> ProcessRecord:
        try:
            started_at = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            started_at = 0.0  # already gone: the record will match nothing
        return cls(name=name, pid=pid, started_at=started_at, stop_signal=stop_signal)

    def find(self) -> psutil.Process | None:
        """The live process this record describes; None once it has exited, even if its pid is reused."""
        proc = alive(self.pid)
        if proc is None or abs(proc.create_time() - self.started_at) > _SAME_START_TOLERANCE_S:
            return None
        return proc

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProcessRecord:
        return cls(
            name=str(data["name"]),
            pid=int(data["pid"]),
            started_at=float(data["started_at"]),
            stop_signal=int(data["stop_signal"]),
        )


def alive(pid: int) -> psutil.Process | None:
    """The process with this pid if it runs (a zombie has exited: it only waits for its parent)."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        return proc
    except (psutil.NoSuchProcess, psutil.AccessDenied, ValueError):
        return None


def command_line(proc: psutil.Process) -> list[str]:
    try:
        return proc.cmdline()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return []


def _signal_group_or_process(pid: int, sig: int) -> None:
    """Signal the process's whole group when it leads one (our children do), else the process alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def kill_group(pid: int) -> None:
    """SIGKILL whatever is left in the process group led by ``pid`` (e.g. server backends)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


async def wait_gone(proc: psutil.Process, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if alive(proc.pid) is None or not proc.is_running():
            return True
        await asyncio.sleep(0.05)
    return alive(proc.pid) is None


async def stop_stray(proc: psutil.Process, stop_signal: int, timeout_s: float) -> None:
    """Stop a process that is not our child (left behind by an earlier run): clean signal, then SIGKILL."""
    _signal_group_or_process(proc.pid, stop_signal)
    if not await wait_gone(proc, timeout_s):
        _signal_group_or_process(proc.pid, signal.SIGKILL)
        await wait_gone(proc, 5.0)


def describe_listener(port: int) -> str:
    """Which process listens on ``port``, as far as this user may know; for error messages."""
    with contextlib.suppress(psutil.AccessDenied, PermissionError, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port and conn.pid:
                proc = alive(conn.pid)
                if proc is not None:
                    return f"pid {conn.pid}: {' '.join(command_line(proc))[:120]}"
    return "a process this user cannot see"
