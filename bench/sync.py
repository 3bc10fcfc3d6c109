"""Offline sync benchmark, side by side in one run (alternating A B A B after a warm-up, medians):

    .venv/bin/python -m bench.sync                       # both parts, ~2 minutes on 2 cores
    .venv/bin/python -m bench.sync --only merge --mutations 40000 --reps 5
    .venv/bin/python -m bench.sync --only push --seconds 8

(a) merge: mutations/s of one worker process (``WorkerRuntime`` on the ``sync`` queue, default
    concurrency) merging uploads of 500 mutations — our set-based ``sync.apply_batch`` vs. a naive merge
    (one ORM ``get`` + compare + ``flush`` per mutation, one transaction per batch), same data, same
    worker. Timed from resuming the prefilled queue to the last job's ``finishedOn``.
(b) push: latency of ``POST /v1/sync/push`` (20 mutations per batch) with 50 concurrent keep-alive
    clients vs. a bare FastAPI endpoint answering 202 on the same uvicorn server, twice: closed loop
    (each client sends again as soon as it is answered: the server's saturation, where latency is
    queueing) and paced (``--rate`` requests/s in all on a fixed schedule, latency counted from when
    each request was due). The server (one
    uvicorn process, as ``habitjobs api`` runs it) and the load generator (one process, a minimal
    HTTP/1.1 client on uvloop) are separate processes; no worker runs meanwhile.

A private database and Redis key prefix are created for the run and removed afterwards. The figures
depend on the machine and its load: a benchmark, never a test.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from bench._common import REDIS_URL, drop_prefix, machine, median, private_database, table
from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.repository import get_or_create_user
from habitjobs.catalog import all_jobs
from habitjobs.config import Settings
from habitjobs.queue.names import SYNC
from habitjobs.queue.producer import EnqueueRequest
from habitjobs.queue.registry import JobSpec, Registry
from habitjobs.queue.runtime import WorkerRuntime
from habitjobs.resources import JobContext, Resources
from habitjobs.sync import merge_sql, service
from habitjobs.sync import repository as sync_repo
from habitjobs.sync.entities import completion_id
from habitjobs.sync.models import SyncBatch, SyncBatchPayload, SyncClient, UserSyncState
from habitjobs.sync.mutations import MutationIn, Op, validate

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 12, 1, tzinfo=UTC)
BATCH = 500
NAIVE_JOB = "bench.naive_apply"

# --- (a) merge ------------------------------------------------------------------------------------


class NaiveApply(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: uuid.UUID


async def naive_apply(ctx: JobContext, payload: NaiveApply) -> dict[str, int]:
    """The obvious ORM merge: per mutation, load the row, compare clocks, set attributes, flush.

    Same sequencing (earlier uploads of the client first), validation, ownership check and
    last-writer-wins rule as ours (row level), one transaction per upload, the dirty days in one
    statement at the end: only the per-row round trips differ.
    """
    from sqlalchemy import select

    async with ctx.resources.db.transaction() as session:
        batch = await session.get(SyncBatch, payload.batch_id)
        assert batch is not None
        earlier = (
            await session.scalars(
                select(SyncBatch.batch_id)
                .where(
                    SyncBatch.user_id == batch.user_id,
                    SyncBatch.client_id == batch.client_id,
                    SyncBatch.status == "queued",
                    SyncBatch.first_mutation_id <= batch.first_mutation_id,
                )
                .order_by(SyncBatch.first_mutation_id)
            )
        ).all()
    totals = {"applied": 0, "stale": 0, "rejected": 0}
    for batch_id in earlier:
        for key, value in (await _naive_one(ctx, batch_id)).items():
            totals[key] += value
    return totals


async def _naive_one(ctx: JobContext, batch_id: uuid.UUID) -> dict[str, int]:
    from habitjobs.sync.entities import DirtyMarks

    applied = stale = rejected = 0
    async with ctx.resources.db.transaction() as session:
        state = await session.get(
            UserSyncState, (await session.get(SyncBatch, batch_id)).user_id, with_for_update=True
        )  # type: ignore[union-attr]
        batch = await session.get(SyncBatch, batch_id, with_for_update=True)
        assert batch is not None
        if batch.status != "queued":
            return {"applied": 0, "stale": 0, "rejected": 0}
        if state is None:
            state = UserSyncState(user_id=batch.user_id, version=0)
            session.add(state)
        state.version += 1
        client = await session.get(SyncClient, (batch.user_id, batch.client_id))
        if client is None:
            client = SyncClient(
                user_id=batch.user_id, client_id=batch.client_id, schema_version=1, last_mutation_id=0
            )
            session.add(client)
        limit = batch.received_at + timedelta(minutes=5)
        marks = DirtyMarks()
        stored = await session.get(SyncBatchPayload, (batch_id, batch.received_at))
        assert stored is not None
        for raw in stored.payload:
            mutation = MutationIn.model_validate(raw).model_dump(exclude_none=True)
            if mutation["mutation_id"] <= client.last_mutation_id:
                continue
            op = validate(mutation, writer=batch.client_id, clock_limit=limit)  # type: ignore[arg-type]
            if not isinstance(op, Op):
                rejected += 1
                continue
            model = op.spec.model
            row: Any = await session.get(model, op.id)
            if row is not None and (
                row.user_id != batch.user_id or op.clock < (row.client_updated_at, row.device_id)
            ):
                stale += 1
                continue
            if op.kind == "delete" and row is None:
                rejected += 1
                continue
            if row is None:
                row = model(id=op.id, user_id=batch.user_id)
                session.add(row)
            for key, value in op.values.items():
                setattr(row, key, value)
            row.deleted_at = op.timestamp if op.kind == "delete" else None
            row.client_updated_at, row.device_id = op.clock
            row.server_version = state.version
            await session.flush()
            applied += 1
            if "local_date" in op.values:
                marks.day(op.values["local_date"])
        client.last_mutation_id = int(batch.last_mutation_id)
        batch.status = "applied"
        await merge_sql.mark_dirty(session, batch.user_id, marks)
    return {"applied": applied, "stale": stale, "rejected": rejected}


HABITS_PER_USER = 8
DAYS_PER_UPLOAD = 30


def _uploads(
    rng: random.Random, habits: list[uuid.UUID], batches: int, first_id: int
) -> list[list[dict[str, Any]]]:
    """What a phone uploads after a month offline, ``batches`` times in a row: 500 actions over 30 days
    of 8 habits — checks (some skipped, some with a value), unchecks of earlier checks, re-checks, focus
    sessions and edits of them, a few habit edits, and 3% late edits from another device's older clock."""
    uploads = []
    live: list[tuple[uuid.UUID, date]] = []
    sessions: list[tuple[str, date]] = []
    mutation_id = first_id
    for b in range(batches):
        start = date(2025, 1, 1) + timedelta(days=DAYS_PER_UPLOAD * b)
        out: list[dict[str, Any]] = []
        for n in range(BATCH):
            day = start + timedelta(days=n * DAYS_PER_UPLOAD // BATCH)
            at = datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=7, seconds=n * 60)
            if rng.random() < 0.03:
                at -= timedelta(days=3)
            mutation: dict[str, Any] = {"mutation_id": mutation_id, "client_updated_at": at.isoformat()}
            mutation_id += 1
            roll = rng.random()
            if roll < 0.15 and live:
                habit, done_day = live.pop(rng.randrange(len(live)))
                mutation.update(
                    entity="habit_completion", op="delete", id=str(completion_id(habit, done_day))
                )
            elif roll < 0.80:
                habit = rng.choice(habits)
                data: dict[str, Any] = {"habit_id": str(habit), "local_date": day.isoformat()}
                if rng.random() < 0.1:
                    data["status"] = "skipped"
                elif rng.random() < 0.3:
                    data["value"] = str(rng.randrange(1, 20))
                mutation.update(
                    entity="habit_completion", op="upsert", id=str(completion_id(habit, day)), data=data
                )
                live.append((habit, day))
            elif roll < 0.95:
                if sessions and rng.random() < 0.2:
                    session_id, session_day = rng.choice(sessions)
                else:
                    session_id, session_day = str(uuid.uuid5(habits[0], f"{day}-{n}")), day
                    sessions.append((session_id, session_day))
                started = datetime.combine(session_day, datetime.min.time(), UTC) + timedelta(hours=9)
                mutation.update(
                    entity="focus_session",
                    op="upsert",
                    id=session_id,
                    data={
                        "started_at": started.isoformat(),
                        "focus_seconds": rng.randrange(300, 3600),
                        "local_date": session_day.isoformat(),
                    },
                )
            else:
                mutation.update(
                    entity="habit",
                    op="patch",
                    id=str(rng.choice(habits)),
                    data={"position": rng.randrange(10)},
                )
            out.append(mutation)
        uploads.append(out)
    return uploads


async def _prepare(
    resources: Resources, arm: str, users: int, batches_per_user: int, seed: int
) -> list[uuid.UUID]:
    """Fresh users with two habits each, and their uploads stored as batches (not yet queued)."""
    per_user: list[list[uuid.UUID]] = []
    rng = random.Random(seed)
    for u in range(users):
        async with resources.db.transaction() as session:
            user = await get_or_create_user(session, f"{arm}-{seed}-{u}@bench.example")
        per_user.append([])
        habits = [uuid.uuid4() for _ in range(HABITS_PER_USER)]
        client_id = f"phone-{u}"
        setup = [
            {
                "mutation_id": n + 1,
                "entity": "habit",
                "op": "upsert",
                "id": str(h),
                "client_updated_at": T0.isoformat(),
                "data": {"name": f"habit {n}"},
            }
            for n, h in enumerate(habits)
        ]
        uploads = [setup, *_uploads(rng, habits, batches_per_user, len(setup) + 1)]
        for mutations in uploads:
            values = {
                "batch_id": uuid.uuid4(),
                "user_id": user.id,
                "client_id": client_id,
                "schema_version": 1,
                "mutation_count": len(mutations),
                "first_mutation_id": mutations[0]["mutation_id"],
                "last_mutation_id": mutations[-1]["mutation_id"],
                "job_id": "bench",
            }
            async with resources.db.transaction() as session:
                await sync_repo.insert_batches(session, [(values, json.dumps(mutations))])
            if mutations is setup:
                await service_apply(resources, values["batch_id"])  # setup is not timed
            else:
                per_user[-1].append(values["batch_id"])
    # Round robin over the users, as uploads of many users arrive (each user's own stay in order).
    return [b for round_ in itertools.zip_longest(*per_user) for b in round_ if b is not None]


async def service_apply(resources: Resources, batch_id: uuid.UUID) -> None:
    spec = resources.registry.get(service.APPLY_JOB)
    ctx = JobContext("setup", spec.name, spec.queue, 1, 1, resources)
    await spec.handler(ctx, spec.parse({"batch_id": batch_id}))


def _process_cpu_s(pid: int) -> float:
    """CPU seconds used so far by process ``pid`` and its live children (Linux /proc): the API's serving
    processes when it runs several."""
    total = 0
    for one in [pid, *_children(pid)]:
        fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        children = task / "children"
        if children.exists():
            found += [int(c) for c in children.read_text().split()]
    return found


def _backend_cpu_s(database: str) -> float:
    """CPU seconds used so far by the PostgreSQL backends serving ``database`` (Linux /proc)."""
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if database not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime, in clock ticks
    return total / os.sysconf("SC_CLK_TCK")


async def _time_worker(resources: Resources, job: str, batch_ids: list[uuid.UUID]) -> float:
    """Seconds for one worker to drain the jobs of ``batch_ids``, from resume to the last finishedOn."""
    queue = resources.producer.queue(SYNC)
    await queue.pause()
    requests = [
        EnqueueRequest(job, {"batch_id": b}, job_id=f"{job.replace('.', '-')}-{b}") for b in batch_ids
    ]
    await resources.producer.enqueue_many(requests)
    runtime = WorkerRuntime(resources, queues=[SYNC])
    await runtime.start()
    try:
        database = str(resources.settings.database_url).rsplit("/", 1)[1]
        cpu_started, pg_started = time.process_time(), _backend_cpu_s(database)
        profile_to = os.environ.get("BENCH_PROFILE_MERGE_TO") if job == service.APPLY_JOB else None
        if profile_to:
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        started = time.time()
        await queue.resume()
        while True:
            counts = await queue.getJobCounts("waiting", "active", "paused", "delayed", "failed")
            if counts["failed"]:
                raise RuntimeError(f"{job}: {counts['failed']} job(s) failed")
            if not any(counts.values()):
                break
            await asyncio.sleep(0.05)
        jobs = await queue.getJobs(["completed"], 0, len(batch_ids) + 10)
        finished = max(int(j.finishedOn) for j in jobs if j.name == job) / 1000
        wall = time.time() - started
        if profile_to:
            profiler.disable()
            profiler.dump_stats(profile_to)
        print(
            f"    CPU: worker {100 * (time.process_time() - cpu_started) / wall:.0f}%, "
            f"postgres backends {100 * (_backend_cpu_s(database) - pg_started) / wall:.0f}% of wall"
        )
    finally:
        await runtime.stop(grace_s=5)
    await queue.clean(0, 100_000, "completed")
    return finished - started


async def _digest(resources: Resources, arm: str, seed: int) -> tuple[int, int, int]:
    """Live completions, their value sum, and focus sessions of one arm's users: both arms must agree."""
    from sqlalchemy import text

    async with resources.db.transaction() as session:
        row = (
            await session.execute(
                text(
                    "SELECT (SELECT count(*) FROM habit_completions c JOIN users u ON u.id = c.user_id "
                    "        WHERE u.email LIKE :p AND c.deleted_at IS NULL),"
                    "       (SELECT coalesce(sum(value), 0)::bigint FROM habit_completions c JOIN users u "
                    "        ON u.id = c.user_id WHERE u.email LIKE :p AND c.deleted_at IS NULL),"
                    "       (SELECT count(*) FROM focus_sessions f JOIN users u ON u.id = f.user_id "
                    "        WHERE u.email LIKE :p)"
                ),
                {"p": f"{arm}-{seed}-%"},
            )
        ).one()
    return int(row[0]), int(row[1]), int(row[2])


async def bench_merge(mutations: int, reps: int) -> list[list[str]]:
    users = 8
    per_user = max(1, mutations // (users * BATCH))
    total = users * per_user * BATCH
    prefix = f"hjbench{secrets.token_hex(4)}"
    rows: list[list[str]] = []
    async with private_database() as url:
        settings = Settings(env="test", database_url=url, redis_url=REDIS_URL, queue_prefix=prefix)
        registry = Registry([*all_jobs(), JobSpec(NAIVE_JOB, SYNC, NaiveApply, naive_apply)])
        resources = Resources.open(settings, registry=registry, application_name="bench")
        try:
            rates: dict[str, list[float]] = {"ours": [], "naive": []}
            for rep in range(reps + 1):  # repetition 0 is the warm-up
                seed = 1000 + rep
                for arm, job in (("ours", service.APPLY_JOB), ("naive", NAIVE_JOB)):
                    batch_ids = await _prepare(resources, arm, users, per_user if rep else 1, seed)
                    seconds = await _time_worker(resources, job, batch_ids)
                    rate = len(batch_ids) * BATCH / seconds
                    label = "warm-up" if rep == 0 else f"rep {rep}"
                    print(
                        f"  merge {arm:5} {label}: {len(batch_ids) * BATCH} mutations "
                        f"in {seconds:.2f} s = {rate:,.0f}/s",
                        flush=True,
                    )
                    if rep:
                        rates[arm].append(rate)
                digests = await _digest(resources, "ours", seed), await _digest(resources, "naive", seed)
                if digests[0] != digests[1]:
                    raise RuntimeError(f"the two merges disagree on the result: {digests}")
            ours, naive = median(rates["ours"]), median(rates["naive"])
            rows.append(
                [
                    f"merge, {total:,} mutations in batches of {BATCH} (8 users)",
                    "mutations/s",
                    f"{ours:,.0f}",
                    f"{naive:,.0f} (naive ORM)",
                    f"{ours / naive:.1f}×",
                ]
            )
        finally:
            await resources.aclose()
            await drop_prefix(prefix)
    return rows


# --- (b) push -------------------------------------------------------------------------------------


def serve(port: int, workers: int = 1) -> None:
    """The API as ``habitjobs api [--workers N]`` serves it, plus a bare endpoint on the same server."""
    from habitjobs.api.server import serve as serve_api
    from habitjobs.config import load_settings

    settings = load_settings()
    serve_api(settings, lambda: _bench_app(settings), host="127.0.0.1", port=port, workers=workers)


def _bench_app(settings: Settings) -> Any:
    from fastapi import status

    from habitjobs.api.app import create_app

    app = create_app(settings)

    @app.post("/bench/bare", status_code=status.HTTP_202_ACCEPTED)
    async def bare() -> dict[str, str]:
        return {"status": "queued"}

    profile_to = os.environ.get("BENCH_PROFILE_TO")
    if profile_to:  # a look inside the server: its profile is written when the load ends
        import cProfile

        profiler = cProfile.Profile()

        @app.post("/bench/profile")
        async def profile(start: bool) -> dict[str, str]:
            if start:
                profiler.enable()
            else:
                profiler.disable()
                profiler.dump_stats(profile_to)
            return {"status": "ok"}

    return app


async def _client(
    port: int,
    path: str,
    token: str,
    client_id: str,
    batch: int,
    deadline: float,
    out: list[float],
    errors: list[str],
    interval: float | None = None,
) -> None:
    """Closed loop (``interval`` None): the next request as soon as the last is answered. Paced: one request
    every ``interval`` seconds on a fixed schedule; a request sent late counts its latency from when it
    was due, so a server falling behind shows in the latencies (no coordinated omission)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    mutation_id = 1
    habit = uuid.uuid4()
    due = time.perf_counter() + (random.random() * interval if interval else 0.0)
    try:
        while time.perf_counter() < deadline:
            if interval is not None:
                wait = due - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
            mutations = [
                {
                    "mutation_id": mutation_id + n,
                    "entity": "habit_completion",
                    "op": "upsert",
                    "id": str(completion_id(habit, date(2026, 1, 1) + timedelta(days=mutation_id + n))),
                    "client_updated_at": "2026-03-03T06:10:04.120Z",
                    "data": {
                        "habit_id": str(habit),
                        "local_date": (date(2026, 1, 1) + timedelta(days=mutation_id + n)).isoformat(),
                    },
                }
                for n in range(batch)
            ]
            mutation_id += batch
            body = json.dumps(
                {
                    "client_id": client_id,
                    "batch_id": str(uuid.uuid4()),
                    "schema_version": 1,
                    "mutations": mutations,
                }
            ).encode()
            head = (
                f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = due if interval is not None else time.perf_counter()
            if interval is not None:
                due += interval
            writer.write(head + body)
            headers = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in headers.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            answer = await reader.readexactly(length)
            out.append(time.perf_counter() - started)
            code = headers[9:12]
            if code != b"202":
                errors.append(f"{code.decode()} {answer[:200]!r}")
    finally:
        writer.close()


def load(port: int, path: str, seconds: float, tokens_file: str, batch: int, rate: float | None) -> None:
    """One load phase: closed loop, or paced at ``rate`` requests/s in all (see ``_client``)."""
    import uvloop

    tokens = json.loads(Path(tokens_file).read_text())

    async def run() -> dict[str, Any]:
        latencies: list[float] = []
        errors: list[str] = []
        deadline = time.perf_counter() + seconds
        interval = len(tokens) / rate if rate else None
        await asyncio.gather(
            *(
                _client(port, path, t, f"bench-{n}", batch, deadline, latencies, errors, interval)
                for n, t in enumerate(tokens)
            )
        )
        latencies.sort()
        return {
            "count": len(latencies),
            "p50_ms": latencies[len(latencies) // 2] * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
            "rps": len(latencies) / seconds,
            "errors": errors[:3],
            "error_count": len(errors),
        }

    print(json.dumps(uvloop.run(run())))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def bench_push(
    seconds: float, reps: int, clients: int, batch: int, rate: float, workers: int = 1
) -> list[list[str]]:
    prefix = f"hjbench{secrets.token_hex(4)}"
    rows: list[list[str]] = []
    async with private_database() as url:
        settings = Settings(env="test", database_url=url, redis_url=REDIS_URL, queue_prefix=prefix)
        resources = Resources.open(settings, application_name="bench")
        tokens = []
        for n in range(clients):
            async with resources.db.transaction() as session:
                user = await get_or_create_user(session, f"push-{n}@bench.example")
            tokens.append(mint_token(settings, user.id, now=datetime.now(UTC)))
        await resources.aclose()
        port = _free_port()
        env = {
            **os.environ,
            "HABITJOBS_ENV": "test",
            "HABITJOBS_DATABASE_URL": url,
            "HABITJOBS_REDIS_URL": REDIS_URL,
            "HABITJOBS_QUEUE_PREFIX": prefix,
            "HABITJOBS_LOG_LEVEL": "WARNING",
            # Each client pushes far more than a phone may: keep the per-user limit's check (its cost is
            # part of a push) but with a quota no client reaches.
            "HABITJOBS_RATE_LIMIT_SYNC": "1000000000/60s",
        }
        server = subprocess.Popen(
            [sys.executable, "-m", "bench.sync", "serve", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
        )
        try:
            _wait_for(port)
            with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
                json.dump(tokens, handle)
            modes: list[tuple[str, float | None]] = [("closed loop", None), (f"paced {rate:,.0f}/s", rate)]
            results: dict[tuple[str, str], list[dict[str, Any]]] = {
                (mode, arm): [] for mode, _ in modes for arm in ("push", "bare")
            }
            phases = [
                (mode, pace, arm, path)
                for mode, pace in modes
                for arm, path in (("push", "/v1/sync/push"), ("bare", "/bench/bare"))
            ]
            for rep in range(reps + 1):
                for mode, pace, arm, path in phases:
                    phase = seconds if rep else max(2.0, seconds / 2)
                    profiling = bool(os.environ.get("BENCH_PROFILE_TO")) and arm == "push" and rep == 1
                    server_cpu = _process_cpu_s(server.pid)
                    if profiling:
                        _post(port, "/bench/profile?start=true")
                    out = subprocess.run(
                        [
                            sys.executable,
                            "-m",
                            "bench.sync",
                            "load",
                            "--port",
                            str(port),
                            "--path",
                            path,
                            "--seconds",
                            str(phase),
                            "--tokens",
                            handle.name,
                            "--batch",
                            str(batch),
                            *(["--rate", str(pace)] if pace else []),
                        ],
                        cwd=ROOT,
                        capture_output=True,
                        text=True,
                        check=True,
                        timeout=phase + 120,
                    )
                    if profiling:
                        _post(port, "/bench/profile?start=false")
                    result = json.loads(out.stdout.strip().splitlines()[-1])
                    result["server_cpu"] = (_process_cpu_s(server.pid) - server_cpu) / phase
                    label = "warm-up" if rep == 0 else f"rep {rep}"
                    print(
                        f"  push {mode:11} {arm:4} {label}: {result['count']} requests, "
                        f"p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, "
                        f"{result['rps']:,.0f}/s, errors {result['error_count']}, "
                        f"API server CPU {100 * result['server_cpu']:.0f}%",
                        flush=True,
                    )
                    if result["error_count"]:
                        raise RuntimeError(f"{arm}: {result['errors']}")
                    if rep:
                        results[mode, arm].append(result)
            os.unlink(handle.name)
        finally:
            server.terminate()
            server.wait(timeout=30)
            await drop_prefix(prefix)
    procs = "" if workers == 1 else f", {workers} API processes"
    for mode, _ in modes:
        for key, label in (("p50_ms", "p50"), ("p99_ms", "p99")):
            ours = median([r[key] for r in results[mode, "push"]])
            bare = median([r[key] for r in results[mode, "bare"]])
            rows.append(
                [
                    f"POST /v1/sync/push, {clients} clients, {mode}, {batch} mutations/batch{procs}",
                    f"{label} latency",
                    f"{ours:.1f} ms",
                    f"{bare:.1f} ms (bare 202)",
                    f"{ours / bare:.1f}×",
                ]
            )
        ours_rps = median([r["rps"] for r in results[mode, "push"]])
        bare_rps = median([r["rps"] for r in results[mode, "bare"]])
        rows.append(
            [
                f"POST /v1/sync/push, {clients} clients, {mode}{procs}",
                "requests/s",
                f"{ours_rps:,.0f}",
                f"{bare_rps:,.0f} (bare 202)",
                f"{ours_rps / bare_rps:.2f}×",
            ]
        )
    return rows


def _post(port: int, path: str) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode())
        sock.recv(1000)


def _wait_for(port: int, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if sock.recv(100).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError("the API server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command")
    serve_cmd = sub.add_parser("serve")
    serve_cmd.add_argument("--port", type=int, required=True)
    serve_cmd.add_argument("--workers", type=int, default=1)
    load_cmd = sub.add_parser("load")
    load_cmd.add_argument("--port", type=int, required=True)
    load_cmd.add_argument("--path", required=True)
    load_cmd.add_argument("--seconds", type=float, required=True)
    load_cmd.add_argument("--tokens", required=True)
    load_cmd.add_argument("--batch", type=int, required=True)
    load_cmd.add_argument("--rate", type=float, default=None)
    parser.add_argument("--only", choices=["merge", "push"])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--mutations", type=int, default=20_000, help="merged per arm and repetition")
    parser.add_argument("--seconds", type=float, default=5.0, help="per push load phase")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--batch", type=int, default=20, help="mutations per pushed batch")
    parser.add_argument(
        "--api-workers", type=int, default=1, help="processes serving the API (habitjobs api --workers)"
    )
    parser.add_argument(
        "--rate", type=float, default=500.0, help="requests/s of the paced push phases (all clients together)"
    )
    args = parser.parse_args()
    if args.command == "serve":
        serve(args.port, args.workers)
        return
    if args.command == "load":
        load(args.port, args.path, args.seconds, args.tokens, args.batch, args.rate)
        return
    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f}", flush=True)
    rows: list[list[str]] = []
    if args.only in (None, "merge"):
        rows += asyncio.run(bench_merge(args.mutations, args.reps))
    if args.only in (None, "push"):
        rows += asyncio.run(
            bench_push(args.seconds, args.reps, args.clients, args.batch, args.rate, args.api_workers)
        )
    print()
    print(table(["what", "unit", "ours (median)", "baseline (median)", "ratio"], rows))


if __name__ == "__main__":
    main()
