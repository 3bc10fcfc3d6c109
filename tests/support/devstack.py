"""Helpers for the dev stack's tests: scratch directories, and finding the processes that belong to one.

Scratch directories live outside pytest's ``tmp_path``: pytest keeps ``/tmp/pytest-of-<user>`` at mode
0700, which the unprivileged PostgreSQL user (when tests run as root) could not enter.
"""

from __future__ import annotations

import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil

from habitjobs.devstack.procs import alive


@contextmanager
def scratch_dir(prefix: str = "hj-devstack-") -> Iterator[Path]:
    """A fresh directory others may enter (not list); servers left in it are killed, then it is deleted."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o711)
    try:
        yield path
    finally:
        for proc in processes_mentioning(path):
            proc.send_signal(signal.SIGKILL)
        shutil.rmtree(path, ignore_errors=True)


def processes_mentioning(path: Path) -> list[psutil.Process]:
    """Live processes whose command line names ``path`` (the embedded servers of a data directory)."""
    found = []
    needle = str(path)
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if needle in cmdline and alive(proc.pid) is not None:
            found.append(proc)
    return found


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def still_running(procs: list[psutil.Process], *, timeout_s: float = 10.0) -> list[psutil.Process]:
    """Those of ``procs`` still alive after up to ``timeout_s`` (orphans are reaped asynchronously)."""
    deadline = time.monotonic() + timeout_s
    while True:
        left = [p for p in procs if alive(p.pid) is not None and _same(p)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.05)


def _same(proc: psutil.Process) -> bool:
    try:
        return proc.is_running()  # False once the pid was reused by another process
    except psutil.NoSuchProcess:
        return False
