"""Engine benchmark: our worker runtime and producer vs. raw bullmq-python vs. Node BullMQ 6.7.0.

    .venv/bin/python bench/engine.py                # ~2 minutes on 2 cores: private Redis, 3 repetitions
    .venv/bin/python bench/engine.py --scale 4 --reps 5 --pin

Measured for each engine on the same Redis in the same run, after a warm-up, the engines alternating
metric by metric (A B C, then B C A, C A B, … so that none always goes first), 3 repetitions by default:

- enqueue single: jobs/s of one producer process adding jobs one at a time (each add awaited);
- enqueue bulk: the same with ``addBulk`` (our ``Producer.enqueue_many``) in chunks;
- no-op: jobs/s of one worker process draining a prefilled queue of jobs that do nothing;
- 10 ms I/O: the same for jobs that await 10 ms (concurrency 100: 10,000/s is the ideal);
- idle pickup: from just before ``add`` to the handler starting, on an idle worker (p50 / p99).

Beside throughput, each worker reports its own CPU time per job (``time.process_time`` of the whole
process, watchdog thread included; Node: ``process.cpuUsage``): on a shared machine that moves much
less with the neighbours' load than jobs/s does. ``--only METRIC`` measures a subset.

"ours" is what production runs: :class:`WorkerRuntime` (registry lookup, payload validation, retry
policy, blocked-loop watchdog) and :class:`Producer` (validation, options). "raw" is a bare bullmq-python
``Worker``/``Queue`` with the same connection settings, options and concurrency. "node" is the Node
package pinned in ``tests/interop/node`` (``npm ci`` there first; ``scripts/test`` does it).

Every measured process (the worker, or the producer for the enqueue figures) is its own process; the
orchestrator (this process) prefills queues, pauses/resumes them and adds the pickup jobs. Processing
is timed from ``resume`` of a prefilled, paused queue to the worker's last ``completed`` event. Redis is a
private ``redis-server`` started for the run (``--redis-url`` to use another, under a private prefix);
every key is deleted afterwards. A benchmark, never a test: the figures depend on the machine's load.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bullmq import Queue, Worker
from pydantic import BaseModel, ConfigDict

from habitjobs.config import Settings
from habitjobs.queue.connection import bullmq_connection, create_redis
from habitjobs.queue.names import DEFAULT
from habitjobs.queue.producer import EnqueueRequest, Producer
from habitjobs.queue.registry import JobSpec, Registry
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import JobContext, Resources

ROOT = Path(__file__).resolve().parents[1]
NODE_SCRIPT = ROOT / "bench" / "engine_node.mjs"
NODE_PACKAGE = ROOT / "tests" / "interop" / "node"
ENGINES = ("ours", "raw", "node")
LABELS = {"ours": "habitjobs runtime", "raw": "bullmq-python 3.4.4", "node": "Node bullmq 6.7.0"}
QUEUE = DEFAULT
# Never connected to: the bench jobs do not touch the database, and Resources opens it lazily.
UNUSED_DATABASE_URL = "postgresql://bench@127.0.0.1:9/unused"
PICKUP_WARMUP = 5
PICKUP_GAP_S = 0.02  # idle time between pickup samples: the worker is back in its blocking wait
STEP_TIMEOUT_S = 120.0


# --- the jobs ------------------------------------------------------------------------------------


class Numbered(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    i: int


class Stamped(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    t: float  # wall-clock milliseconds just before the job was added


def sample_key(prefix: str) -> str:
    return f"{prefix}:bench:pickup"


async def noop(_ctx: JobContext, _payload: Numbered) -> None:
    return None


async def io_10ms(_ctx: JobContext, _payload: Numbered) -> None:
    await asyncio.sleep(0.01)


async def pickup(ctx: JobContext, payload: Stamped) -> None:
    latency_ms = time.time() * 1000 - payload.t
    await ctx.resources.producer.redis.rpush(sample_key(ctx.resources.settings.queue_prefix), latency_ms)


METRICS = ("enqueue single", "enqueue bulk", "no-op", "10 ms I/O", "pickup")
JOB_NAMES = {"noop": "bench.noop", "io": "bench.io", "pickup": "bench.pickup"}


def bench_registry() -> Registry:
    return Registry(
        [
            JobSpec("bench.noop", QUEUE, Numbered, noop),
            JobSpec("bench.io", QUEUE, Numbered, io_10ms),
            JobSpec("bench.pickup", QUEUE, Stamped, pickup),
        ]
    )


def bench_settings(redis_url: str, prefix: str) -> Settings:
    return Settings(env="dev", redis_url=redis_url, database_url=UNUSED_DATABASE_URL, queue_prefix=prefix)


async def job_options(settings: Settings) -> dict[str, Any]:
    """The options our producer gives a job, so that every engine adds and finishes the same jobs."""
    producer = Producer(settings, bench_registry())
    try:
        spec = bench_registry().get("bench.noop")
        return producer.job_options(spec, EnqueueRequest("bench.noop", {"i": 0}))
    finally:
        await producer.close()


# --- roles that run in their own process ---------------------------------------------------------


def say(value: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(value) + "\n")
    sys.stdout.flush()


async def role_enqueue(engine: str, a: dict[str, Any]) -> None:
    settings = bench_settings(a["redisUrl"], a["prefix"])
    n, chunk, single = int(a["n"]), int(a["chunk"]), a["mode"] == "single"
    if engine == "ours":
        producer = Producer(settings, bench_registry())
        for _ in range(20):  # connect, load the scripts
            await producer.enqueue("bench.noop", {"i": -1})
        start = time.perf_counter()
        if single:
            for i in range(n):
                await producer.enqueue("bench.noop", {"i": i})
        else:
            for first in range(0, n, chunk):
                await producer.enqueue_many(
                    [EnqueueRequest("bench.noop", {"i": i}) for i in range(first, min(first + chunk, n))]
                )
        seconds = time.perf_counter() - start
        await producer.close()
    else:
        client = create_redis(settings.require_redis_url())
        queue = Queue(QUEUE, {"connection": client, "prefix": settings.queue_prefix})
        opts = a["opts"]
        for _ in range(20):
            await queue.add("bench.noop", {"i": -1}, opts)
        start = time.perf_counter()
        if single:
            for i in range(n):
                await queue.add("bench.noop", {"i": i}, opts)
        else:
            for first in range(0, n, chunk):
                await queue.addBulk(
                    [
                        {"name": "bench.noop", "data": {"i": i}, "opts": opts}
                        for i in range(first, min(first + chunk, n))
                    ]
                )
        seconds = time.perf_counter() - start
        await queue.close()
        await client.aclose()
    say({"seconds": seconds})


async def role_worker(engine: str, a: dict[str, Any]) -> None:
    settings = bench_settings(a["redisUrl"], a["prefix"])
    n, kind = int(a["n"]), a["kind"]
    done = asyncio.Event()
    completed = 0
    end = 0.0

    def on_completed(*_: Any) -> None:
        nonlocal completed, end
        completed += 1
        if completed == n:
            end = time.time()
            done.set()

    stop: Callable[[], Awaitable[Any]]
    if engine == "ours":
        resources = Resources.open(settings, registry=bench_registry(), application_name="bench")
        runtime = WorkerRuntime(resources, queues=[QUEUE], concurrency=int(a["concurrency"]))
        await runtime.start()
        runtime.workers[QUEUE].on("completed", on_completed)

        async def stop_ours() -> None:
            await runtime.stop(grace_s=5)
            await resources.aclose()

        stop = stop_ours
    else:
        client = create_redis(settings.require_redis_url())

        async def raw_noop(_job: Any, _token: str) -> None:
            return None

        async def raw_io(_job: Any, _token: str) -> None:
            await asyncio.sleep(0.01)

        async def raw_pickup(job: Any, _token: str) -> None:
            latency_ms = time.time() * 1000 - float(job.data["t"])
            await client.rpush(sample_key(settings.queue_prefix), latency_ms)

        processor = {"noop": raw_noop, "io": raw_io, "pickup": raw_pickup}[kind]
        worker = Worker(
            QUEUE,
            processor,
            {
                "connection": bullmq_connection(settings.require_redis_url()),
                "prefix": settings.queue_prefix,
                "concurrency": int(a["concurrency"]),
                "lockDuration": settings.lock_duration_ms,
                "stalledInterval": settings.stalled_interval_ms,
                "maxStalledCount": settings.max_stalled_count,
                "autorun": False,
            },
        )
        worker.on("completed", on_completed)
        # Connect and load the scripts before saying ready, as WorkerRuntime.start() does.
        await worker.runStalledJobsCheck()
        running = asyncio.create_task(worker.run())

        async def stop_raw() -> None:
            await worker.close()
            await asyncio.wait_for(running, 10)
            await client.aclose()

        stop = stop_raw
    say({"ready": True})
    cpu_start = time.process_time()  # all threads of this process: the watchdog's too
    await done.wait()
    say({"t_end": end, "cpu_s": time.process_time() - cpu_start})
    await stop()


# --- the orchestrator ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    single: int
    bulk: int
    chunk: int
    noop: int
    io: int
    pickup: int
    noop_concurrency: int
    io_concurrency: int = 100

    def scaled(self, factor: float) -> Sizes:
        def s(v: int) -> int:
            return max(50, int(v * factor))

        return Sizes(
            s(self.single),
            s(self.bulk),
            self.chunk,
            s(self.noop),
            s(self.io),
            s(self.pickup),
            self.noop_concurrency,
        )


BASE_SIZES = Sizes(single=1_500, bulk=8_000, chunk=500, noop=3_000, io=3_000, pickup=100, noop_concurrency=10)


@dataclass
class Results:
    # metric → engine → one value per repetition
    values: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    pickup: dict[str, list[float]] = field(default_factory=dict)

    def add(self, metric: str, engine: str, value: float) -> None:
        self.values.setdefault(metric, {}).setdefault(engine, []).append(value)


class Bench:
    def __init__(self, redis_url: str, sizes: Sizes, *, pin: bool, node: str, logs: Path) -> None:
        self.redis_url = redis_url
        self.sizes = sizes
        self.pin = pin
        self.node = node
        self.logs = logs
        self.base_prefix = f"hjbench{secrets.token_hex(4)}"
        self._runs = 0
        self.redis = create_redis(redis_url)
        self.opts: dict[str, Any] = {}
        self.lock = {
            "lockDuration": Settings.model_fields["lock_duration_ms"].default,
            "stalledInterval": Settings.model_fields["stalled_interval_ms"].default,
            "maxStalledCount": Settings.model_fields["max_stalled_count"].default,
        }

    def new_prefix(self) -> str:
        self._runs += 1
        return f"{self.base_prefix}r{self._runs}"

    def command(self, engine: str, role: str, args: dict[str, Any]) -> list[str]:
        if engine == "node":
            cmd = [self.node, str(NODE_SCRIPT), role, json.dumps(args)]
        else:
            cmd = [sys.executable, str(Path(__file__).resolve()), "--role", role, "--engine", engine]
            cmd += ["--args", json.dumps(args)]
        # The measured process gets core 1; Redis and this process stay on core 0.
        return ["taskset", "-c", "1", *cmd] if self.pin else cmd

    async def spawn(
        self, engine: str, role: str, args: dict[str, Any]
    ) -> tuple[asyncio.subprocess.Process, Path]:
        log = self.logs / f"{self._runs:03d}-{engine}-{role}.log"
        with log.open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *self.command(engine, role, args), stdout=asyncio.subprocess.PIPE, stderr=err, cwd=ROOT
            )
        return proc, log

    @staticmethod
    async def read(proc: asyncio.subprocess.Process, log: Path) -> dict[str, Any]:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), STEP_TIMEOUT_S)
        if not line:
            await proc.wait()
            raise RuntimeError(f"process exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        value: dict[str, Any] = json.loads(line)
        return value

    async def finish(self, proc: asyncio.subprocess.Process, log: Path) -> None:
        try:
            code = await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            code = await proc.wait()
        if code != 0:
            raise RuntimeError(f"process exited with {code}:\n{log.read_text(errors='replace')}")

    async def forget(self, prefix: str) -> None:
        keys = [k async for k in self.redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(keys), 1000):
            await self.redis.unlink(*keys[i : i + 1000])

    def base_args(self, prefix: str) -> dict[str, Any]:
        return {
            "redisUrl": self.redis_url,
            "prefix": prefix,
            "queue": QUEUE,
            "opts": self.opts,
            "lock": self.lock,
        }

    # --- measurements --------------------------------------------------------------------------

    async def enqueue(self, engine: str, mode: str, n: int) -> float:
        prefix = self.new_prefix()
        args = {**self.base_args(prefix), "mode": mode, "n": n, "chunk": self.sizes.chunk}
        proc, log = await self.spawn(engine, "enqueue", args)
        seconds = float((await self.read(proc, log))["seconds"])
        await self.finish(proc, log)
        count = await Queue(QUEUE, {"connection": self.redis, "prefix": prefix}).getJobCountByTypes("waiting")
        assert count == n + 20, f"{engine} enqueued {count} jobs, expected {n + 20}"
        await self.forget(prefix)
        return n / seconds

    async def processing(self, engine: str, kind: str, n: int, concurrency: int) -> tuple[float, float]:
        """Jobs/s from resume to the last completion, and the worker process's CPU µs per job."""
        prefix = self.new_prefix()
        queue = Queue(QUEUE, {"connection": self.redis, "prefix": prefix})
        await queue.pause()
        name = JOB_NAMES[kind]
        for first in range(0, n, 1000):
            await queue.addBulk(
                [
                    {"name": name, "data": {"i": i}, "opts": self.opts}
                    for i in range(first, min(first + 1000, n))
                ]
            )
        args = {**self.base_args(prefix), "kind": kind, "n": n, "concurrency": concurrency}
        proc, log = await self.spawn(engine, "worker", args)
        await self.read(proc, log)  # ready
        start = time.time()
        await queue.resume()
        report = await self.read(proc, log)
        await self.finish(proc, log)
        await self.forget(prefix)
        return n / (float(report["t_end"]) - start), float(report["cpu_s"]) * 1e6 / n

    async def pickup(self, engine: str, n: int) -> list[float]:
        prefix = self.new_prefix()
        queue = Queue(QUEUE, {"connection": self.redis, "prefix": prefix})
        args = {**self.base_args(prefix), "kind": "pickup", "n": n + PICKUP_WARMUP, "concurrency": 1}
        proc, log = await self.spawn(engine, "worker", args)
        await self.read(proc, log)  # ready
        samples: list[float] = []
        for i in range(n + PICKUP_WARMUP):
            await asyncio.sleep(PICKUP_GAP_S * random.uniform(1.0, 1.5))
            await queue.add("bench.pickup", {"t": time.time() * 1000}, self.opts)
            popped = await self.redis.blpop([sample_key(prefix)], timeout=10)
            if popped is None:
                raise RuntimeError(f"{engine}: no pickup within 10 s:\n{log.read_text(errors='replace')}")
            if i >= PICKUP_WARMUP:
                samples.append(float(popped[1]))
        await self.read(proc, log)  # t_end
        await self.finish(proc, log)
        await self.forget(prefix)
        return samples

    async def measure(self, metric: str, engine: str, sizes: Sizes) -> dict[str, float | list[float]]:
        if metric == "enqueue single":
            return {metric: await self.enqueue(engine, "single", sizes.single)}
        if metric == "enqueue bulk":
            return {metric: await self.enqueue(engine, "bulk", sizes.bulk)}
        if metric == "no-op":
            rate, cpu = await self.processing(engine, "noop", sizes.noop, sizes.noop_concurrency)
            return {metric: rate, f"{metric} cpu": cpu}
        if metric == "10 ms I/O":
            rate, cpu = await self.processing(engine, "io", sizes.io, sizes.io_concurrency)
            return {metric: rate, f"{metric} cpu": cpu}
        samples = await self.pickup(engine, sizes.pickup)
        return {"pickup": samples, "pickup p99": percentile(samples, 99)}

    async def round(
        self,
        results: Results | None,
        sizes: Sizes,
        metrics: list[str],
        progress: Callable[[str], None],
        *,
        rotation: int = 0,
    ) -> None:
        """One pass over ``metrics``, each alternating the engines: A B C, or B C A with ``rotation=1``…
        (so that over 3 repetitions no engine always runs first, right after the cleanup of the last
        metric). ``results=None``: a warm-up."""
        order = ENGINES[rotation % 3 :] + ENGINES[: rotation % 3]
        for metric in metrics:
            for engine in order:
                measured = await self.measure(metric, engine, sizes)
                shown = []
                for name, value in measured.items():
                    if isinstance(value, list):
                        if results is not None:
                            results.pickup.setdefault(engine, []).extend(value)
                        continue
                    if results is not None:
                        results.add(name, engine, value)
                    if name == "pickup p99":
                        samples = measured["pickup"]
                        assert isinstance(samples, list)
                        shown.append(f"p50 {percentile(samples, 50):.2f} ms, p99 {value:.2f} ms")
                    else:
                        shown.append(f"{value:,.0f} {'µs CPU/job' if name.endswith('cpu') else 'jobs/s'}")
                progress(f"  {metric:15} {LABELS[engine]:20} {', '.join(shown)}")

    async def close(self) -> None:
        await self.forget(self.base_prefix)
        await self.redis.aclose()


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = (len(ordered) - 1) * p / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


# --- the report ---------------------------------------------------------------------------------


def machine(redis_version: str, node: str) -> list[str]:
    meminfo = Path("/proc/meminfo").read_text().split("\n", 1)[0].split()
    node_version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout
    return [
        f"nproc {os.cpu_count()}, RAM {int(meminfo[1]) / 1024 / 1024:.1f} GiB, {platform.platform()}",
        f"Python {platform.python_version()}, Redis {redis_version}, Node {node_version.strip()}",
    ]


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def table(results: Results, sizes: Sizes) -> str:
    """The markdown table (medians of the repetitions; pickup percentiles over all their samples)."""
    measured = results.values

    def med(metric: str, engine: str) -> float:
        return statistics.median(measured[metric][engine])

    def row(label: str, values: list[float], fmt: str) -> str:
        o, r, n = values
        cells = " | ".join(format(v, fmt) for v in values)
        return f"| {label} | {cells} | {o / r:.2f} | {o / n:.2f} |"

    labels = {
        "enqueue single": f"enqueue single, jobs/s ({sizes.single:,} awaited adds)",
        "enqueue bulk": f"enqueue bulk, jobs/s ({sizes.bulk:,} in chunks of {sizes.chunk})",
        "no-op": f"processing no-op, jobs/s ({sizes.noop:,}, concurrency {sizes.noop_concurrency})",
        "no-op cpu": "… worker CPU per no-op job, µs",
        "10 ms I/O": f"jobs awaiting 10 ms, jobs/s ({sizes.io:,}, concurrency {sizes.io_concurrency})",
        "10 ms I/O cpu": "… worker CPU per 10 ms job, µs",
    }
    lines = [
        "| metric | habitjobs runtime | bullmq-python 3.4.4 | Node bullmq 6.7.0 | ours / raw | ours / Node |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        row(label, [med(m, e) for e in ENGINES], ",.0f") for m, label in labels.items() if m in measured
    ]
    if results.pickup:
        p = {e: results.pickup[e] for e in ENGINES}
        for q in (50, 99):
            label = f"idle pickup p{q}, ms ({len(p['ours'])} samples)"
            lines.append(row(label, [percentile(p[e], q) for e in ENGINES], ".2f"))
    lines.append("")

    def paired(metric: str, invert: bool) -> float:
        # Each repetition's ours and raw ran back to back, under the same conditions: compare those pairs.
        pairs = zip(measured[metric]["ours"], measured[metric]["raw"], strict=True)
        return statistics.median((r / o if invert else o / r) for o, r in pairs) - 1

    for metric in ("no-op", "10 ms I/O"):
        if metric in measured:
            lines.append(
                f"Overhead of our runtime over raw bullmq-python, {metric} (median of the repetitions' "
                f"ours/raw pairs): {paired(metric, True):+.1%} time per job by throughput, "
                f"{paired(f'{metric} cpu', False):+.1%} worker CPU per job."
            )
    if results.pickup:
        p99 = percentile(results.pickup["ours"], 99)
        lines.append(f"Idle pickup p99 of our runtime: {p99:.2f} ms (target: < 10 ms).")
    lines += ["", "Each repetition (1 / 2 / 3 …):"]
    for metric, label in [*labels.items(), ("pickup p99", "idle pickup p99, ms")]:
        if metric not in measured:
            continue
        fmt = ".2f" if metric == "pickup p99" else ",.0f"
        per_engine = "; ".join(
            f"{LABELS[e]} " + " / ".join(format(v, fmt) for v in measured[metric][e]) for e in ENGINES
        )
        lines.append(f"- {label.lstrip('… ')}: {per_engine}")
    return "\n".join(lines)


# --- private Redis ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_private_redis(workdir: Path, pin: bool) -> tuple[subprocess.Popen[bytes], str]:
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not on PATH: install it or pass --redis-url")
    port = free_port()
    cmd = [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    cmd += [
        "--maxmemory-policy",
        "noeviction",
        "--dir",
        str(workdir),
        "--logfile",
        str(workdir / "redis.log"),
    ]
    proc = subprocess.Popen(["taskset", "-c", "0", *cmd] if pin else cmd)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return proc, f"redis://127.0.0.1:{port}/0"
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"redis-server did not start on port {port}")


async def main_run(args: argparse.Namespace) -> None:
    node = shutil.which("node")
    if node is None or not (NODE_PACKAGE / "node_modules" / "bullmq").exists():
        raise SystemExit(f"needs node on PATH and `npm ci` in {NODE_PACKAGE}")
    if args.pin:
        os.sched_setaffinity(0, {0})
    sizes = BASE_SIZES.scaled(args.scale)
    warmup = BASE_SIZES.scaled(args.scale * 0.2)
    with tempfile.TemporaryDirectory(prefix="hjbench-") as tmp:
        workdir = Path(tmp)
        redis_proc = None
        redis_url = args.redis_url
        if redis_url is None:
            redis_proc, redis_url = start_private_redis(workdir, args.pin)
        bench = Bench(redis_url, sizes, pin=args.pin, node=node, logs=workdir)
        started = time.monotonic()
        load_before = load_average()

        def progress(line: str) -> None:
            print(f"{time.monotonic() - started:5.0f} s {line}", file=sys.stderr, flush=True)

        try:
            bench.opts = await job_options(bench_settings(redis_url, bench.base_prefix))
            info = await bench.redis.info("server")
            progress(f"Redis {info['redis_version']} at {redis_url}, prefix {bench.base_prefix}")
            progress("warm-up")
            await bench.round(None, warmup, args.only, progress)
            results = Results()
            for rep in range(1, args.reps + 1):
                progress(f"repetition {rep}/{args.reps}")
                await bench.round(results, sizes, args.only, progress, rotation=rep - 1)
        finally:
            await bench.close()
            if redis_proc is not None:
                redis_proc.terminate()
                redis_proc.wait(10)
        elapsed = time.monotonic() - started
    where = "a private redis-server" if args.redis_url is None else args.redis_url
    cores = (
        "measured process pinned to core 1, Redis and the orchestrator to core 0"
        if args.pin
        else "no pinning: Redis, the measured process and the orchestrator share all cores"
    )
    print(f"## Engine benchmark, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    print()
    for line in machine(str(info["redis_version"]), node):
        print(f"- {line}")
    command = " ".join(["python", "bench/engine.py", *sys.argv[1:]])
    print(f"- `{command}`: {args.reps} repetitions after a warm-up,")
    print(f"  medians; Redis: {where}; {cores}; {elapsed:.0f} s")
    print(f"- load average (1/5/15 min) before {load_before}, after {load_average()}")
    print()
    print(table(results, sizes))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every job count (default 1)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions after the warm-up (default 3)")
    parser.add_argument(
        "--redis-url", help="use this Redis (under a private prefix) instead of a private server"
    )
    parser.add_argument(
        "--pin", action="store_true", help="pin the measured process to core 1, the rest to 0"
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=METRICS,
        help="measure only this metric (repeatable; default: all)",
    )
    parser.add_argument("--role", choices=["enqueue", "worker"], help=argparse.SUPPRESS)
    parser.add_argument("--engine", choices=["ours", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--args", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.only = args.only or list(METRICS)
    if args.role is None:
        asyncio.run(main_run(args))
        return
    role = role_enqueue if args.role == "enqueue" else role_worker
    asyncio.run(role(args.engine, json.loads(args.args)))


if __name__ == "__main__":
    main()
