"""Push benchmark: pushes/s from one worker process to the fake providers, with the delivery bookkeeping.

    .venv/bin/python -m bench.push                       # ~6 minutes on 2 cores (FCM rounds are slow)
    .venv/bin/python -m bench.push --only apns --reps 5  # the APNs senders only, ~4 minutes
    .venv/bin/python -m bench.push --deliveries 6000 --latency-ms 20

Side by side in one run (a warm-up round, then A B C … repeated ``--reps`` times; medians and ratios):

- APNs: ours (``push.send_batch``: lease, our h2 client with many streams, batched outcome writes) vs. a
  naive sender (one request at a time, one UPDATE + commit per delivery) vs. ``aioapns`` with our
  bookkeeping;
- FCM: ours (``push.send_batch`` on our HTTP/2 client) vs. the naive sender (the same client, one at a time).

Each round creates ``--deliveries`` push_deliveries rows (one per device, 5 devices per user) and stages
them as jobs of 500 on the paused ``push`` queue; the clock runs from resuming the queue to the last
delivery's ``finished_at``. The measured worker is one ``habitjobs worker --queue push`` process (default
concurrency: 4 batches at a time); the fake providers run in their own process (``python -m
habitjobs.push.fakes``). The table also shows the worker's CPU time per push, from /proc. A private
database and Redis prefix are created for the run and removed afterwards. A benchmark, never a test.
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
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import func, insert, select, text

from bench._common import REDIS_URL, drop_prefix, machine, median, private_database, table
from habitjobs.accounts.models import Device, User
from habitjobs.config import Settings
from habitjobs.push.models import PushDelivery
from habitjobs.queue.names import PUSH
from habitjobs.queue.producer import EnqueueRequest
from habitjobs.resources import Resources

ROOT = Path(__file__).resolve().parent.parent
BATCH = 500
DEVICES_PER_USER = 5
ROUND_TIMEOUT_S = 300.0

# name → (provider, job name, label)
VARIANTS: dict[str, tuple[str, str, str]] = {
    "apns-ours": ("apns", "push.send_batch", "APNs, ours (h2 client, batched books)"),
    "apns-naive": ("apns", "bench.naive_send", "APNs, naive (1 request at a time)"),
    "apns-aioapns": ("apns", "bench.aioapns_send", "APNs, aioapns client + our books"),
    "fcm-ours": ("fcm", "push.send_batch", "FCM, ours (h2 client, batched books)"),
    "fcm-naive": ("fcm", "bench.naive_send", "FCM, naive (1 request at a time)"),
}
BASELINE = {"apns": "apns-naive", "fcm": "fcm-naive"}


def start_fakes(directory: Path, latency_ms: float) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "habitjobs.push.fakes",
            "--dir",
            str(directory),
            "--latency-ms",
            str(latency_ms),
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError("the fake providers did not start")
    env: dict[str, str] = json.loads(line)["env"]
    return proc, env


def start_worker(settings: Settings, fakes_env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HABITJOBS_")}
    env.update(fakes_env)
    env.update(
        HABITJOBS_ENV="test",
        HABITJOBS_DATABASE_URL=str(settings.database_url),
        HABITJOBS_REDIS_URL=str(settings.redis_url),
        HABITJOBS_QUEUE_PREFIX=settings.queue_prefix,
        HABITJOBS_EXTRA_JOB_MODULES="bench.push_jobs",
        # The rate limiter is not what is measured here.
        HABITJOBS_PUSH_APNS_RATE_PER_S="1000000",
        HABITJOBS_PUSH_FCM_RATE_PER_S="1000000",
        PYTHONPATH=str(ROOT),
    )
    out = log.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "habitjobs", "worker", "--queue", PUSH],
        env=env,
        cwd=ROOT,
        stdout=out,
        stderr=out,
    )
    return proc


async def seed(res: Resources, devices: int) -> None:
    """``devices`` iPhones (APNs) and as many Android phones (FCM), 5 per user."""
    rows: list[dict[str, Any]] = []
    users: list[dict[str, Any]] = []
    for provider in ("apns", "fcm"):
        for i in range(devices):
            if i % DEVICES_PER_USER == 0:
                users.append({"id": uuid.uuid4(), "email": f"{provider}{i}@bench.example"})
            rows.append(
                {
                    "id": uuid.uuid4(),
                    "user_id": users[-1]["id"],
                    "platform": "ios" if provider == "apns" else "android",
                    "provider": provider,
                    "push_token": f"ok-{uuid.uuid4().hex}",
                    "apns_env": "production" if provider == "apns" else None,
                }
            )
    async with res.db.transaction() as session:
        await session.execute(insert(User), users)
        for start in range(0, len(rows), 5000):
            await session.execute(insert(Device), rows[start : start + 5000])


_DELIVERIES = text(
    """
    INSERT INTO push_deliveries
        (id, dedupe_key, user_id, device_id, provider, kind, payload, collapse_id, not_after)
    SELECT gen_random_uuid(), :round || ':' || d.id, d.user_id, d.id, d.provider, 'morning_routine',
           CAST(:payload AS jsonb), 'hj-' || md5(:round || d.user_id::text), :not_after
    FROM devices d WHERE d.provider = :provider
    ORDER BY d.user_id, d.id
    LIMIT :n
    RETURNING id
    """
)
PAYLOAD = json.dumps(
    {
        "title": "Good morning",
        "body": "Time for Sunrise. Start your day one habit at a time.",
        "data": {"kind": "morning_routine", "routine_id": str(uuid.uuid4())},
    }
)


async def one_round(
    res: Resources, variant: str, n: int, worker: psutil.Process, fakes: psutil.Process
) -> dict[str, Any]:
    provider, job_name, _ = VARIANTS[variant]
    queue = res.producer.queue(PUSH)
    await queue.pause()
    async with res.db.transaction() as session:
        ids = list(
            (
                await session.scalars(
                    _DELIVERIES,
                    {
                        "round": f"bench:{variant}:{secrets.token_hex(4)}",
                        "payload": PAYLOAD,
                        "not_after": datetime.now(UTC) + timedelta(hours=1),
                        "provider": provider,
                        "n": n,
                    },
                )
            ).all()
        )
    requests = [
        EnqueueRequest(
            job_name, {"delivery_ids": [str(i) for i in ids[s : s + BATCH]]}, job_id=f"b-{uuid.uuid4()}"
        )
        for s in range(0, len(ids), BATCH)
    ]
    await res.producer.enqueue_many(requests)
    cpu_before = sum(worker.cpu_times()[:2])
    fakes_cpu_before = sum(fakes.cpu_times()[:2])
    started = time.time()
    await queue.resume()
    deadline = time.monotonic() + ROUND_TIMEOUT_S
    while True:
        async with res.db.transaction() as session:
            # Only this round's rows exist (each round truncates the table at its end).
            unfinished = await session.scalar(
                select(func.count()).where(PushDelivery.status.in_(("pending", "sending")))
            )
        if not unfinished or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.2)
    cpu_after = sum(worker.cpu_times()[:2])
    fakes_cpu_after = sum(fakes.cpu_times()[:2])
    async with res.db.transaction() as session:
        finished, sent = (
            await session.execute(
                select(
                    func.max(PushDelivery.finished_at), func.count().filter(PushDelivery.status == "sent")
                ).where(PushDelivery.id.in_(ids))
            )
        ).one()
        await session.execute(text("TRUNCATE push_deliveries"))
    elapsed = (finished.timestamp() if finished else time.time()) - started
    return {
        "rate": len(ids) / elapsed,
        "cpu_us": (cpu_after - cpu_before) / len(ids) * 1e6,
        "fakes_cpu_us": (fakes_cpu_after - fakes_cpu_before) / len(ids) * 1e6,
        "sent": int(sent),
        "n": len(ids),
        "unfinished": int(unfinished or 0),
    }


async def run(args: argparse.Namespace) -> None:
    variants = [v for v in VARIANTS if not args.only or any(v.startswith(o) for o in args.only)]
    prefix = f"hjbench{secrets.token_hex(5)}"
    workdir = Path(tempfile.mkdtemp(prefix="hjbench-push-"))
    fakes, fakes_env = start_fakes(workdir, args.latency_ms)
    worker_proc: subprocess.Popen[bytes] | None = None
    try:
        async with private_database() as url:
            overrides = {k[len("HABITJOBS_") :].lower(): v for k, v in fakes_env.items()}
            settings = Settings(
                env="test",
                database_url=url,
                redis_url=REDIS_URL,
                queue_prefix=prefix,
                extra_job_modules="bench.push_jobs",
                **overrides,
            )
            res = Resources.open(settings, application_name="bench-push")
            try:
                await seed(res, args.deliveries)
                worker_proc = start_worker(settings, fakes_env, workdir / "worker.log")
                worker = psutil.Process(worker_proc.pid)
                fakes_ps = psutil.Process(fakes.pid)
                started_by = time.monotonic() + 60
                while b" started: " not in (workdir / "worker.log").read_bytes():
                    if worker_proc.poll() is not None or time.monotonic() > started_by:
                        raise RuntimeError(
                            "the worker did not start:\n" + (workdir / "worker.log").read_text()
                        )
                    await asyncio.sleep(0.1)
                print(
                    f"machine: {machine()}; fakes pid {fakes.pid}, worker pid {worker_proc.pid}", flush=True
                )
                for variant in variants:  # warm-up: connections, tokens, caches
                    await one_round(res, variant, min(1000, args.deliveries), worker, fakes_ps)
                results: dict[str, list[dict[str, Any]]] = {v: [] for v in variants}
                for rep in range(args.reps):
                    for variant in variants:
                        result = await one_round(res, variant, args.deliveries, worker, fakes_ps)
                        results[variant].append(result)
                        rate, worker_us, fakes_us = result["rate"], result["cpu_us"], result["fakes_cpu_us"]
                        print(
                            f"rep {rep + 1} {variant:13} {rate:8.0f} pushes/s  "
                            f"CPU µs/push: worker {worker_us:5.0f}, fakes {fakes_us:4.0f}  "
                            f"sent {result['sent']}/{result['n']}",
                            flush=True,
                        )
            finally:
                await res.aclose()
                await drop_prefix(prefix)
    finally:
        for proc in (worker_proc, fakes):
            if proc is not None:
                proc.terminate()
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)

    rows = []
    for variant in variants:
        provider = VARIANTS[variant][0]
        rate = median([r["rate"] for r in results[variant]])
        base = results.get(BASELINE[provider])
        ratio = (
            f"{rate / median([r['rate'] for r in base]):.1f}×"
            if base and variant != BASELINE[provider]
            else "1.0×"
        )
        rows.append(
            [
                VARIANTS[variant][2],
                f"{rate:,.0f}",
                ratio,
                f"{median([r['cpu_us'] for r in results[variant]]):,.0f}",
                f"{median([r['fakes_cpu_us'] for r in results[variant]]):,.0f}",
                f"{sum(r['sent'] for r in results[variant])}/{sum(r['n'] for r in results[variant])}",
            ]
        )
    print()
    print(
        f"{args.deliveries} deliveries per round, {args.reps} reps, fake latency {args.latency_ms} ms, "
        f"medians; ratio against the naive sender of the same provider"
    )
    print(table(["sender", "pushes/s", "ratio", "worker CPU µs/push", "fakes CPU µs/push", "sent"], rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--deliveries", type=int, default=3000, help="pushes per round (default 3000)")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=0.0, help="the fakes answer after this long")
    parser.add_argument("--only", nargs="*", help="variant name prefixes, e.g. apns-ours fcm")
    args = parser.parse_args()
    os.chdir(ROOT)
    asyncio.run(run(args))


if __name__ == "__main__":
    main()
