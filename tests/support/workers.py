"""Running workers in tests: in-process until the queues are drained, or as real subprocesses."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from habitjobs.config import Settings
from habitjobs.queue.registry import Schedule
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import Resources

BUSY_STATES = ("waiting", "active", "delayed", "prioritized", "paused")


async def pending_jobs(resources: Resources, queues: Sequence[str]) -> int:
    total = 0
    for queue in queues:
        counts = await resources.producer.queue(queue).getJobCounts(*BUSY_STATES)
        total += sum(int(v) for v in counts.values())
    return total


async def wait_until_idle(resources: Resources, queues: Sequence[str], *, timeout_s: float = 30.0) -> None:
    """Return once no job of ``queues`` is waiting, active or delayed (checked twice in a row)."""
    deadline = time.monotonic() + timeout_s
    idle_checks = 0
    while idle_checks < 2:
        if time.monotonic() > deadline:
            raise TimeoutError(f"queues {list(queues)} still busy after {timeout_s}s")
        idle_checks = idle_checks + 1 if await pending_jobs(resources, queues) == 0 else 0
        await asyncio.sleep(0.02)


async def drain(
    resources: Resources,
    *,
    queues: Sequence[str] | None = None,
    timeout_s: float = 30.0,
    concurrency: int | None = None,
    schedules: Sequence[Schedule] = (),
) -> WorkerRuntime:
    """Run a worker in this process until the queues are empty, then stop it (arq's burst mode)."""
    runtime = WorkerRuntime(resources, queues=queues, concurrency=concurrency, schedules=schedules)
    await runtime.start()
    try:
        await wait_until_idle(resources, runtime.queues, timeout_s=timeout_s)
    finally:
        await runtime.stop(grace_s=5)
    return runtime


def process_env(settings: Settings, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HABITJOBS_")}
    values = {
        "HABITJOBS_ENV": settings.env,
        "HABITJOBS_DATABASE_URL": settings.database_url or "",
        "HABITJOBS_REDIS_URL": settings.redis_url or "",
        "HABITJOBS_QUEUE_PREFIX": settings.queue_prefix,
        "HABITJOBS_LOCK_DURATION_MS": str(settings.lock_duration_ms),
        "HABITJOBS_STALLED_INTERVAL_MS": str(settings.stalled_interval_ms),
        "HABITJOBS_MAX_STALLED_COUNT": str(settings.max_stalled_count),
        "HABITJOBS_SHUTDOWN_GRACE_S": str(settings.shutdown_grace_s),
        "HABITJOBS_OUTBOX_RELAY_EVERY_MS": str(settings.outbox_relay_every_ms),
        "HABITJOBS_OUTBOX_RELAY_GRACE_S": str(settings.outbox_relay_grace_s),
        "HABITJOBS_LOG_LEVEL": "INFO",
        # Many tests run workers side by side: no /metrics port unless a test asks for one.
        "HABITJOBS_WORKER_METRICS_PORT": "0",
    }
    env.update(values)
    env.update(extra)
    return env


class WorkerProcess:
    """`python -m habitjobs worker` as a child process, its output captured to a file."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        *args: str,
        command: Sequence[str] = (sys.executable, "-m", "habitjobs"),
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [*command, "worker", *args],
            cwd=cwd,
            env=process_env(settings, **(env or {})),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_started(self, timeout_s: float = 20.0) -> None:
        deadline = time.monotonic() + timeout_s
        while " started: " not in self.output():
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited with {self.proc.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker did not start:\n{self.output()}")
            await asyncio.sleep(0.05)

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    async def wait_exit(self, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None:
            if time.monotonic() > deadline:
                raise TimeoutError(f"worker still running after {timeout_s}s:\n{self.output()}")
            await asyncio.sleep(0.05)
        self._log.close()
        return int(self.proc.returncode)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()


class ApiProcess:
    """`python -m habitjobs api` on a free loopback port, as a child process."""

    def __init__(
        self,
        settings: Settings,
        log_path: Path,
        port: int,
        *,
        command: Sequence[str] = (sys.executable, "-m", "habitjobs"),
        cwd: Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self._log = log_path.open("wb")
        self.log_path = log_path
        self.proc = subprocess.Popen(
            [*command, "api", "--host", "127.0.0.1", "--port", str(port)],
            cwd=cwd,
            env=process_env(settings, **(env or {})),
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
