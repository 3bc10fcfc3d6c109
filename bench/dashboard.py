"""Dashboard benchmark: the failed-jobs page with 100,000 failed jobs in the queue.

    .venv/bin/python -m bench.dashboard                  # ~1 min: 100,000 failed jobs, 40 requests each
    .venv/bin/python -m bench.dashboard --jobs 100000 --reps 60

Fills one queue's failed set with ``--jobs`` failed jobs (BullMQ job hashes with data, options, a failure
reason and a stack trace, as our worker leaves them), then times, in the same run and alternately:

- ``json (baseline)``: the admin JSON API's list, ``GET /admin/queues/default/jobs?state=failed``;
- ``page 1``: the dashboard's list page, ``GET /admin/jobs/default/failed`` (HTML, 50 jobs);
- ``page 1000``: the same, 50,000 jobs deep;
- ``live rows``: the fragment the page polls every 3 s;
- ``filter name``: a filtered search (by job name, matching every other job).

Each request goes through the whole app (middleware, session or token check with its PostgreSQL query,
Redis reads, template) over an in-process ASGI transport: no network, no server. Reported: p50 / p95 in
ms, and p50 relative to the baseline. A private database and key prefix are used and dropped.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable

import httpx

from bench._common import REDIS_URL, drop_prefix, machine, private_database, table
from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.repository import get_or_create_user, update_user
from habitjobs.api.app import create_app
from habitjobs.clock import SystemClock
from habitjobs.config import Settings
from habitjobs.dashboard.routes import COOKIE
from habitjobs.dashboard.sessions import for_settings
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources

TRACE = (
    "Traceback (most recent call last):\n"
    '  File "/app/habitjobs/queue/runtime.py", line 131, in _process\n'
    "    return await spec.handler(ctx, payload)\n"
    "RuntimeError: provider answered 503\n"
)


async def fill_failed(resources: Resources, count: int) -> None:
    """``count`` failed jobs in queue default, written as BullMQ writes them (hash + failed sorted set)."""
    redis = resources.producer.redis
    prefix = f"{resources.settings.queue_prefix}:{DEFAULT}"
    now = int(time.time() * 1000)
    names = ("accounts.export_data", "accounts.delete_user")
    for start in range(0, count, 2_000):
        pipe = redis.pipeline(transaction=False)
        scores: dict[str, int] = {}
        for i in range(start, min(count, start + 2_000)):
            job_id = f"bench-{i}"
            finished = now - (count - i) * 10
            pipe.hset(
                f"{prefix}:{job_id}",
                mapping={
                    "name": names[i % 2],
                    "data": json.dumps({"export_id": f"00000000-0000-0000-0000-{i:012d}"}),
                    "opts": json.dumps({"attempts": 5, "jobId": job_id}),
                    "timestamp": finished - 60_000,
                    "processedOn": finished - 100,
                    "finishedOn": finished,
                    "attemptsMade": 5,
                    "attemptsStarted": 5,
                    "failedReason": "provider answered 503",
                    "stacktrace": json.dumps([TRACE] * 5),
                    "delay": 0,
                    "priority": 0,
                },
            )
            scores[job_id] = finished
        pipe.zadd(f"{prefix}:failed", scores)
        await pipe.execute()


async def timed(call: Callable[[], Awaitable[httpx.Response]]) -> float:
    started = time.perf_counter()
    answer = await call()
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 200, answer.text[:300]
    return elapsed


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def main(jobs: int, reps: int) -> None:
    prefix = f"hjbench-dash-{secrets.token_hex(3)}"
    async with private_database() as database_url:
        settings = Settings(env="test", database_url=database_url, redis_url=REDIS_URL, queue_prefix=prefix)
        resources = Resources.open(settings, application_name="bench-dashboard")
        try:
            filled = time.perf_counter()
            await fill_failed(resources, jobs)
            print(f"{jobs:,} failed jobs written in {time.perf_counter() - filled:.1f} s")
            async with resources.db.transaction() as session:
                user = await get_or_create_user(session, "bench@example.com")
                await update_user(session, user.id, {"is_admin": True})
            token = mint_token(settings, user.id, now=SystemClock().now())
            cookie, _ = await for_settings(resources.producer.redis, settings).open(user.id)
            app = create_app(settings, resources=resources)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(
                transport=transport, base_url="http://bench.test", cookies={COOKIE: cookie}
            ) as http:
                bearer = {"Authorization": f"Bearer {token}"}
                cases: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
                    "json (baseline)": lambda: http.get(
                        f"/admin/queues/{DEFAULT}/jobs", params={"state": "failed"}, headers=bearer
                    ),
                    "page 1": lambda: http.get(f"/admin/jobs/{DEFAULT}/failed"),
                    "page 1000": lambda: http.get(f"/admin/jobs/{DEFAULT}/failed", params={"page": "999"}),
                    "live rows": lambda: http.get(
                        f"/admin/fragments/jobs/{DEFAULT}/failed", headers={"HX-Request": "true"}
                    ),
                    "filter name": lambda: http.get(
                        f"/admin/jobs/{DEFAULT}/failed", params={"name": "accounts.delete_user"}
                    ),
                }
                samples: dict[str, list[float]] = {name: [] for name in cases}
                for call in cases.values():  # warm-up: templates compiled, connections pooled
                    await timed(call)
                for _ in range(reps):
                    for name, call in cases.items():
                        samples[name].append(await timed(call))
            base = statistics.median(samples["json (baseline)"])
            rows = [
                [
                    name,
                    f"{statistics.median(values):.1f}",
                    f"{pct(values, 0.95):.1f}",
                    f"{statistics.median(values) / base:.2f}×",
                ]
                for name, values in samples.items()
            ]
            print(machine())
            print(f"{jobs:,} failed jobs in one queue, {reps} requests per case, alternating")
            print(table(["request", "p50 ms", "p95 ms", "p50 vs baseline"], rows))
        finally:
            await resources.aclose()
            await drop_prefix(prefix)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--reps", type=int, default=40)
    args = parser.parse_args()
    asyncio.run(main(args.jobs, args.reps))
