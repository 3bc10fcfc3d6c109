"""Worker processes by the dozen, for chaos tests that kill many of them.

A fresh interpreter spends a couple of CPU-seconds importing the worker before it takes a job; on a busy
2-core machine fifty of them take minutes. The zygote imports everything once, then forks a worker per
request: each is a real process running the real ``habitjobs worker`` code (its own event loop, its own
connections, opened after the fork), started in milliseconds and killed like any other.

Protocol (the zygote is ``python -m tests.support.zygote``, with the workers' ``HABITJOBS_*`` environment):
a line ``<log path> <worker args...>`` on its stdin forks a worker whose output goes to the log file; the
zygote answers the child's pid on a line, and when the child ends writes its exit code (negative: the
signal) to ``<log path>.exit``. A line ``quit`` ends the zygote.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from habitjobs.config import Settings
from tests.support.workers import process_env


class ForkedWorker:
    def __init__(self, pid: int, log_path: Path) -> None:
        self.pid = pid
        self.log_path = log_path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def started(self) -> bool:
        return " started: " in self.output()

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def exit_code(self) -> int | None:
        path = Path(f"{self.log_path}.exit")
        return int(path.read_text()) if path.exists() and path.read_text() else None

    async def wait_exit(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while (code := self.exit_code()) is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker {self.pid} still running after {timeout_s}s:\n{self.output()}")
            await asyncio.sleep(0.02)
        return code


class WorkerZygote:
    def __init__(self, settings: Settings, **env: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.zygote"],
            env=process_env(settings, **env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def spawn(self, log_path: Path, *args: str) -> ForkedWorker:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(" ".join([str(log_path), *args]) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the zygote exited with {self.proc.wait()}")
        return ForkedWorker(int(line), log_path)

    def close(self) -> None:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        if self.proc.poll() is None:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=10)
        self.proc.stdin.close()
        self.proc.stdout.close()


def _child(log_path: str, args: list[str]) -> None:
    from habitjobs.cli.main import app

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
    code = 1
    try:
        app(["worker", *args])
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def main() -> None:
    # Everything a worker imports, once, before any fork (no connection is opened here).
    import habitjobs.catalog
    import habitjobs.cli.main
    import habitjobs.queue.runtime
    import habitjobs.resources  # noqa: F401

    exits: dict[int, Path] = {}

    def reap(*_: object) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            path = exits.pop(pid, None)
            if path is not None:
                path.write_text(str(os.waitstatus_to_exitcode(status)))

    signal.signal(signal.SIGCHLD, reap)
    while line := sys.stdin.readline():
        parts = line.split()
        if not parts:
            continue
        if parts[0] == "quit":
            break
        # No child may end before its exit file is known: hold SIGCHLD until it is recorded.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
        pid = os.fork()
        if pid == 0:
            _child(parts[0], parts[1:])
        exits[pid] = Path(f"{parts[0]}.exit")
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGCHLD})
        print(pid, flush=True)


if __name__ == "__main__":
    main()
