"""Fairness benchmark: how long light users' jobs wait behind one heavy user's backlog.

    .venv/bin/python -m bench.fairness              # ~30 s: 3 repetitions of each mode
    .venv/bin/python -m bench.fairness --heavy 500 --light 50 --work-ms 20 --concurrency 4 --reps 5

One heavy user has ``--heavy`` jobs queued, then ``--light`` users add one job each; then a worker (our
``WorkerRuntime``, ``--concurrency`` jobs at a time, one process) drains the queue. Each job awaits
``--work-ms`` (I/O-bound work, like an export or a merge waiting for PostgreSQL). A job's wait is from
its enqueue (BullMQ's timestamp) to its handler starting.

Two job types that differ only in fairness, measured alternately in the same run (A B A B …):
- ``fifo``: what every job type did before (no priority: arrival order);
- ``fair``: the job type marked ``fair`` (priority = the job's rank among its user's queued jobs, see
  ``habitjobs/queue/fairness.py``), enqueued through the same ``Producer``.

Reported per mode (medians over the repetitions): the light users' wait p50 / p99 / max, the heavy
user's last job's wait, and the whole drain's throughput. Redis: ``HABITJOBS_BENCH_REDIS_URL`` (default
the local one on 6379), a private key prefix deleted afterwards; no database is used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict

from bench._common import REDIS_URL, drop_prefix, machine, median, table
from habitjobs.config import Settings
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.registry import JobSpec, Registry
from habitjobs.queue.retry import RetryPolicy
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import JobContext, Resources


class Work(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    user: str
    light: bool


def _registry(started: dict[str, tuple[bool, float]], work_ms: int) -> Registry:
    async def work(ctx: JobContext, payload: Work) -> None:
        job = ctx._job
        started[ctx.job_id] = (payload.light, time.time() * 1000 - float(job.timestamp))
        await asyncio.sleep(work_ms / 1000)

    policy = RetryPolicy(attempts=1)
    return Registry(
        [
            JobSpec("bench.fair", DEFAULT, Work, work, policy=policy, fair=True),
            JobSpec("bench.fifo", DEFAULT, Work, work, policy=policy),
        ]
    )


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def _one_run(mode: str, args: argparse.Namespace) -> dict[str, float]:
    prefix = f"hjbench{secrets.token_hex(4)}"
    settings = Settings(
        env="test",
        redis_url=REDIS_URL,
        database_url="postgresql://unused@127.0.0.1:1/unused",  # never connected: the jobs use no database
        queue_prefix=prefix,
    )
    started: dict[str, tuple[bool, float]] = {}
    resources = Resources.open(settings, registry=_registry(started, args.work_ms))
    name = f"bench.{mode}"
    try:
        producer = resources.producer
        heavy = str(uuid.uuid4())
        for i in range(args.heavy):
            await producer.enqueue(name, Work(user=heavy, light=False), job_id=f"h-{i}", user=heavy)
        for i in range(args.light):
            user = str(uuid.uuid4())
            await producer.enqueue(name, Work(user=user, light=True), job_id=f"l-{i}", user=user)
        runtime = WorkerRuntime(resources, queues=[DEFAULT], concurrency=args.concurrency)
        begin = time.perf_counter()
        await runtime.start()
        total = args.heavy + args.light
        deadline = time.monotonic() + 600
        while len(started) < total and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - begin
        await runtime.stop(grace_s=10)
        light = [wait for is_light, wait in started.values() if is_light]
        return {
            "light_p50": _percentile(light, 0.5),
            "light_p99": _percentile(light, 0.99),
            "light_max": max(light),
            "heavy_last": started[f"h-{args.heavy - 1}"][1],
            "jobs_per_s": total / elapsed,
        }
    finally:
        await resources.aclose()
        await drop_prefix(prefix)


async def main(args: argparse.Namespace) -> None:
    print(f"machine: {machine()}; load average before: {os.getloadavg()[0]:.2f}")
    print(
        f"{args.heavy} jobs of one heavy user, then {args.light} light users with 1 job each; "
        f"worker concurrency {args.concurrency}, {args.work_ms} ms of awaited work per job\n"
    )
    runs: dict[str, list[dict[str, float]]] = {"fifo": [], "fair": []}
    await _one_run("fair", argparse.Namespace(**{**vars(args), "heavy": 20, "light": 5}))  # warm-up
    for rep in range(args.reps):
        for mode in ("fifo", "fair") if rep % 2 == 0 else ("fair", "fifo"):
            result = await _one_run(mode, args)
            runs[mode].append(result)
            print(
                f"rep {rep + 1} {mode}: light p99 {result['light_p99']:.0f} ms, "
                f"heavy last {result['heavy_last']:.0f} ms, {result['jobs_per_s']:.0f} jobs/s"
            )
    print(f"load average after: {os.getloadavg()[0]:.2f}\n")

    def med(mode: str, key: str) -> float:
        return median([r[key] for r in runs[mode]])

    fmt: Callable[[float], str] = lambda v: f"{v:,.0f}"  # noqa: E731
    rows = [
        [
            mode,
            fmt(med(mode, "light_p50")) + " ms",
            fmt(med(mode, "light_p99")) + " ms",
            fmt(med(mode, "light_max")) + " ms",
            fmt(med(mode, "heavy_last")) + " ms",
            fmt(med(mode, "jobs_per_s")),
        ]
        for mode in ("fifo", "fair")
    ]
    print(
        table(["mode", "light p50 wait", "light p99 wait", "light max", "heavy's last job", "jobs/s"], rows)
    )
    ratio = med("fifo", "light_p99") / max(med("fair", "light_p99"), 0.001)
    spread = statistics.pstdev([r["light_p99"] for r in runs["fair"]])
    print(f"\nlight users' p99 wait: {ratio:.1f}× shorter with fairness (fair p99 spread ±{spread:.0f} ms)")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--heavy", type=int, default=500)
    parser.add_argument("--light", type=int, default=50)
    parser.add_argument("--work-ms", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--reps", type=int, default=3)
    return parser.parse_args(argv)


def run(argv: list[str] | None = None) -> Any:
    return asyncio.run(main(parse(argv)))


if __name__ == "__main__":
    run()
