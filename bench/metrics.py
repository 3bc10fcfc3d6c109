"""What the metrics cost on the hot paths, with and without them side by side in one run (alternating
off/on after a warm-up, medians):

    .venv/bin/python -m bench.metrics                    # both parts, ~2 minutes on 2 cores
    .venv/bin/python -m bench.metrics --jobs 5000 --seconds 6 --reps 3

(a) no-op jobs: one in-process ``WorkerRuntime`` on the default queue works off a prefilled backlog of
    no-op jobs; jobs/s and the worker's CPU per job, with ``habitjobs.observability.metrics`` recording
    or switched off (``HABITJOBS_METRICS=false``: the hooks check one flag).
(b) sync push: ``POST /v1/sync/push`` (20 mutations per batch), 50 keep-alive clients in a closed loop,
    against two API servers started alike but for ``HABITJOBS_METRICS``; requests/s and the API
    process's CPU per request. The load generator is ``bench.sync``'s.

A private database and Redis key prefix are created for the run and removed afterwards. The figures depend
on the machine and its load: a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from bench._common import REDIS_URL, drop_prefix, machine, median, private_database, table
from bench.sync import ROOT, _free_port, _process_cpu_s, _wait_for
from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.repository import get_or_create_user
from habitjobs.config import Settings
from habitjobs.observability import metrics
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.producer import EnqueueRequest
from habitjobs.queue.registry import JobSpec
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import JobContext, Resources


class Numbered(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    i: int


async def noop(_ctx: JobContext, _payload: Numbered) -> None:
    return None


JOBS = [JobSpec("bench.noop", DEFAULT, Numbered, noop)]


async def _one_noop_run(resources: Resources, jobs: int) -> tuple[float, float]:
    """Seconds and worker CPU seconds to work off ``jobs`` prefilled no-op jobs."""
    queue = resources.producer.queue(DEFAULT)
    await queue.pause()
    for start in range(0, jobs, 1000):
        await resources.producer.enqueue_many(
            [EnqueueRequest("bench.noop", {"i": i}) for i in range(start, min(jobs, start + 1000))]
        )
    runtime = WorkerRuntime(resources, queues=[DEFAULT])
    await runtime.start()
    cpu = time.process_time()
    started = time.perf_counter()
    await queue.resume()
    while True:
        counts = await queue.getJobCounts("waiting", "active", "paused")
        if sum(int(v) for v in counts.values()) == 0:
            break
        await asyncio.sleep(0.01)
    took, cpu = time.perf_counter() - started, time.process_time() - cpu
    await runtime.stop(grace_s=5)
    await queue.obliterate({"force": True})
    return took, cpu


async def bench_noop(jobs: int, reps: int) -> list[list[str]]:
    prefix = f"hjbench{secrets.token_hex(4)}"
    results: dict[str, list[tuple[float, float]]] = {"off": [], "on": []}
    async with private_database() as url:
        settings = Settings(
            env="test",
            database_url=url,
            redis_url=REDIS_URL,
            queue_prefix=prefix,
            extra_job_modules="bench.metrics",
            log_level="WARNING",
        )
        resources = Resources.open(settings, application_name="bench")
        try:
            for rep in range(reps + 1):
                for arm in ("off", "on"):
                    metrics.set_enabled(arm == "on")
                    took, cpu = await _one_noop_run(resources, jobs if rep else max(500, jobs // 4))
                    label = "warm-up" if rep == 0 else f"rep {rep}"
                    n = jobs if rep else max(500, jobs // 4)
                    print(
                        f"  no-op metrics {arm:3} {label}: {n / took:,.0f} jobs/s, "
                        f"{1e6 * cpu / n:.0f} µs CPU/job",
                        flush=True,
                    )
                    if rep:
                        results[arm].append((n / took, 1e6 * cpu / n))
        finally:
            metrics.set_enabled(True)
            await resources.aclose()
            await drop_prefix(prefix)
    rows = []
    for index, (what, unit) in enumerate((("jobs/s", ""), ("worker CPU per job", " µs"))):
        off = median([r[index] for r in results["off"]])
        on = median([r[index] for r in results["on"]])
        change = (on / off - 1) * 100 if index else (1 - on / off) * 100
        rows.append(
            [
                f"no-op jobs, one worker, {jobs} per rep",
                what,
                f"{on:,.0f}{unit}",
                f"{off:,.0f}{unit}",
                f"{change:+.1f} % cost",
            ]
        )
    return rows


async def bench_push(seconds: float, reps: int, clients: int, batch: int) -> list[list[str]]:
    prefix = f"hjbench{secrets.token_hex(4)}"
    results: dict[str, list[dict[str, Any]]] = {"off": [], "on": []}
    async with private_database() as url:
        settings = Settings(env="test", database_url=url, redis_url=REDIS_URL, queue_prefix=prefix)
        resources = Resources.open(settings, application_name="bench")
        tokens = []
        for n in range(clients):
            async with resources.db.transaction() as session:
                user = await get_or_create_user(session, f"push-{n}@bench.example")
            tokens.append(mint_token(settings, user.id, now=datetime.now(UTC)))
        await resources.aclose()
        servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
        try:
            for arm in ("off", "on"):
                port = _free_port()
                env = {
                    **os.environ,
                    "HABITJOBS_ENV": "test",
                    "HABITJOBS_DATABASE_URL": url,
                    "HABITJOBS_REDIS_URL": REDIS_URL,
                    "HABITJOBS_QUEUE_PREFIX": prefix,
                    "HABITJOBS_LOG_LEVEL": "WARNING",
                    "HABITJOBS_METRICS": "true" if arm == "on" else "false",
                    "HABITJOBS_RATE_LIMIT_SYNC": "1000000000/60s",
                }
                server = subprocess.Popen(
                    [sys.executable, "-m", "bench.sync", "serve", "--port", str(port)], cwd=ROOT, env=env
                )
                servers[arm] = (server, port)
                _wait_for(port)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(tokens, handle)
            for rep in range(reps + 1):
                for arm in ("off", "on"):
                    server, port = servers[arm]
                    phase = seconds if rep else max(2.0, seconds / 2)
                    cpu = _process_cpu_s(server.pid)
                    out = subprocess.run(
                        [
                            *(sys.executable, "-m", "bench.sync", "load", "--port", str(port)),
                            *("--path", "/v1/sync/push", "--seconds", str(phase)),
                            *("--tokens", handle.name, "--batch", str(batch)),
                        ],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=phase + 120,
                    )
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result["cpu_per_request_us"] = (
                        1e6 * (_process_cpu_s(server.pid) - cpu) / max(1, result["count"])
                    )
                    if result["error_count"]:
                        raise RuntimeError(f"{arm}: {result['errors']}")
                    label = "warm-up" if rep == 0 else f"rep {rep}"
                    print(
                        f"  push metrics {arm:3} {label}: {result['rps']:,.0f}/s, "
                        f"p99 {result['p99_ms']:.1f} ms, "
                        f"API CPU {result['cpu_per_request_us']:.0f} µs/request",
                        flush=True,
                    )
                    if rep:
                        results[arm].append(result)
            os.unlink(handle.name)
        finally:
            for server, _ in servers.values():
                server.terminate()
                server.wait(timeout=30)
            await drop_prefix(prefix)
    off_rps = median([r["rps"] for r in results["off"]])
    on_rps = median([r["rps"] for r in results["on"]])
    off_cpu = median([r["cpu_per_request_us"] for r in results["off"]])
    on_cpu = median([r["cpu_per_request_us"] for r in results["on"]])
    label = f"POST /v1/sync/push, {clients} clients closed loop, {batch} mutations"
    return [
        [
            label,
            "requests/s",
            f"{on_rps:,.0f}",
            f"{off_rps:,.0f}",
            f"{(1 - on_rps / off_rps) * 100:+.1f} % cost",
        ],
        [
            label,
            "API CPU per request",
            f"{on_cpu:.0f} µs",
            f"{off_cpu:.0f} µs",
            f"{(on_cpu / off_cpu - 1) * 100:+.1f} % cost",
        ],
    ]


async def _hook_costs(n: int) -> dict[str, float]:
    """µs per call of the job hook and of the request middleware, metrics on minus off (one process,
    nothing else in the loop: the hooks' own CPU, free of the machine's load swings)."""
    from habitjobs.api.observe import RequestObserver
    from habitjobs.observability import job_runs as observe

    async def nothing() -> None:
        return None

    async def app(_scope: Any, _receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(_message: Any) -> None:
        return None

    observed = RequestObserver(app)
    scope = {"type": "http", "method": "POST", "path": "/v1/sync/push", "headers": []}
    out: dict[str, float] = {}
    for arm in ("off", "on", "off", "on"):
        metrics.set_enabled(arm == "on")
        started = time.process_time()
        for _ in range(n):
            await observe.run_job(DEFAULT, "bench.noop", "1", None, None, nothing)
        job_us = 1e6 * (time.process_time() - started) / n
        started = time.process_time()
        for _ in range(n):
            await observed(dict(scope), receive, send)
        request_us = 1e6 * (time.process_time() - started) / n
        out[f"job {arm}"] = min(out.get(f"job {arm}", job_us), job_us)
        out[f"request {arm}"] = min(out.get(f"request {arm}", request_us), request_us)
    metrics.set_enabled(True)
    return out


def bench_hooks(n: int = 50_000) -> list[list[str]]:
    costs = asyncio.run(_hook_costs(n))
    job = costs["job on"] - costs["job off"]
    request = costs["request on"] - costs["request off"]
    print(f"  hooks: {costs}", flush=True)
    return [
        [
            "job hook (run_job), CPU per job",
            "µs",
            f"{costs['job on']:.1f}",
            f"{costs['job off']:.1f}",
            f"+{job:.1f} µs",
        ],
        [
            "request middleware, CPU per request",
            "µs",
            f"{costs['request on']:.1f}",
            f"{costs['request off']:.1f}",
            f"+{request:.1f} µs",
        ],
    ]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=("noop", "push", "hooks"))
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batch", type=int, default=20)
    args = parser.parse_args()
    print(machine())
    rows: list[list[str]] = []
    if args.only in (None, "hooks"):
        rows += bench_hooks()
    if args.only in (None, "noop"):
        rows += asyncio.run(bench_noop(args.jobs, args.reps))
    if args.only in (None, "push"):
        rows += asyncio.run(bench_push(args.seconds, args.reps, args.clients, args.batch))
    print(table(["path", "measure", "metrics on", "metrics off (same run)", "change"], rows))


if __name__ == "__main__":
    main()
