"""Child processes of the supervisor, each in its own session.

Their own session keeps a terminal's Ctrl-C (sent to the foreground process group) away from them: only
the supervisor receives it, and it stops the children in order — API and worker first, so that active
jobs can finish, the servers they use last. Each child leads its own process group, so stopping a child
also stops what it started (PostgreSQL's backends).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from habitjobs.devstack.procs import ProcessRecord, kill_group


@dataclass(frozen=True)
class RunAs:
    """An unprivileged user to run a server as (PostgreSQL refuses to run as root)."""

    name: str
    uid: int
    gid: int


class Child:
    def __init__(self, name: str, process: asyncio.subprocess.Process, stop_signal: signal.Signals) -> None:
        self.name = name
        self.process = process
        self.stop_signal = stop_signal
        self.record = ProcessRecord.of(name, process.pid, int(stop_signal))

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.returncode

    def signal(self, sig: signal.Signals) -> None:
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    async def wait(self, timeout_s: float) -> int | None:
        try:
            return await asyncio.wait_for(self.process.wait(), timeout_s)
        except TimeoutError:
            return None

    async def stop(self, timeout_s: float) -> int:
        """Ask the child to shut down, SIGKILL its group after ``timeout_s``; returns the exit status.

        Whatever else is left in its process group afterwards is killed too, so nothing survives it.
        """
        self.signal(self.stop_signal)
        code = await self.wait(timeout_s)
        if code is None:
            self.signal(signal.SIGKILL)
            code = await self.process.wait()
        kill_group(self.process.pid)
        return code


async def spawn(
    name: str,
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stop_signal: signal.Signals = signal.SIGTERM,
    output: IO[bytes] | None = None,
    run_as: RunAs | None = None,
    cwd: Path | None = None,
) -> Child:
    """Start ``argv`` in a new session. Output goes to ``output`` (a file), or to a pipe when None."""
    ownership: dict[str, object] = {}
    if run_as is not None:
        ownership = {"user": run_as.uid, "group": run_as.gid, "extra_groups": []}
    process = await asyncio.create_subprocess_exec(
        *argv,
        env=dict(env),
        cwd=cwd,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=output if output is not None else asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        start_new_session=True,
        limit=1 << 20,  # longest output line read at once (a long traceback line, say)
        **ownership,  # type: ignore[arg-type]
    )
    return Child(name, process, stop_signal)


def describe_exit(code: int | None) -> str:
    """``0``, ``3``, ``SIGTERM``: how a child ended (a negative status is the signal that ended it)."""
    if code is None:
        return "running"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return f"signal {-code}"
    return str(code)


def server_env(base: Mapping[str, str]) -> dict[str, str]:
    """The environment for an embedded server: ours, minus libpq variables that would redirect it."""
    return {k: v for k, v in base.items() if not k.startswith("PG")}
