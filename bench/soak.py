"""Soak: uploads, exports and pushes for a set time with a shortened retention, and every growing table's
size over time — it must level off once retention and partition maintenance keep up.

What runs, in this process against a private database and key prefix (bounded by ``--seconds``, then it
stops by itself and drops both):

- uploads: ``--uploads`` per second, each of ``--mutations`` habit upserts (the same few habits per user,
  so the users' own data stays the same size and only what retention governs grows), stored by the
  upload path (``accept_push``: status row, payload partition, outbox row, job in Redis) and merged by
  the ``sync.apply_batch`` handler;
- exports: one request a second (a random user; the export job's handler builds it);
- pushes: ``--pushes`` notifications a second fanned out to the users' devices (``create_fan_out``) and
  finished as sent (no provider is called: storage is what is measured);
- maintenance: ``maintenance.retention`` and ``maintenance.partitions`` every ``--maintain-every`` seconds,
  with every keep set to ``--keep`` seconds and one-minute payload partitions; on a server running
  without autovacuum, a ``VACUUM`` of the tables after each run stands in for it.

The baseline in the same run is the same workload's size with retention off — what the tables would hold
without it — extrapolated from the measured bytes per row (the rows written so far times their size).

    .venv/bin/python -m bench.soak [--seconds 240] [--uploads 20] [--keep 60]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from sqlalchemy import func, text, update

from bench._common import REDIS_URL, drop_prefix, machine, private_database, table
from habitjobs.accounts import jobs as accounts_jobs
from habitjobs.accounts import service as accounts
from habitjobs.accounts.repository import get_or_create_user
from habitjobs.accounts.schemas import DevicePut
from habitjobs.config import Settings
from habitjobs.db import partitions as partition_ddl
from habitjobs.maintenance import jobs as maintenance
from habitjobs.maintenance import retention
from habitjobs.push import service as push
from habitjobs.push.models import PushDelivery
from habitjobs.push.schemas import Notification
from habitjobs.push.templates import Kind
from habitjobs.resources import JobContext, Resources
from habitjobs.sync import jobs as sync_jobs
from habitjobs.sync import service as sync
from habitjobs.sync.models import PAYLOAD_PARTITIONS
from habitjobs.sync.schemas import PushIn

TABLES = ["sync_batches", "sync_batch_payloads", "outbox", "push_deliveries", "data_exports"]
_SIZE = """
SELECT greatest(pg_total_relation_size(CAST(:t AS regclass)), coalesce((
    SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(CAST(:t AS regclass))), 0))::bigint
"""


class Soak:
    def __init__(self, resources: Resources, users: list[uuid.UUID], args: argparse.Namespace) -> None:
        self.resources = resources
        self.users = users
        self.args = args
        self.counts = {"uploads": 0, "mutations": 0, "exports": 0, "pushes": 0}
        self.clients = {u: (f"soak-{u.hex[:8]}", [0]) for u in users}
        self.stop = asyncio.Event()
        # Set when the server runs without autovacuum: the soak then vacuums after each maintenance run,
        # as autovacuum would (a batched delete's space is reused only once vacuumed).
        self.vacuum: asyncpg.Connection | None = None

    def _ctx(self, name: str) -> JobContext:
        spec = self.resources.registry.get(name)
        return JobContext(f"soak-{uuid.uuid4().hex}", spec.name, spec.queue, 1, 1, self.resources)

    async def upload(self) -> None:
        user = random.choice(self.users)
        client_id, counter = self.clients[user]
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        mutations = []
        for _ in range(self.args.mutations):
            counter[0] += 1
            habit = uuid.uuid5(user, str(counter[0] % 5))
            mutations.append(
                {
                    "mutation_id": counter[0],
                    "entity": "habit",
                    "op": "upsert",
                    "id": str(habit),
                    "client_updated_at": now,
                    "data": {"name": f"habit {counter[0] % 5}, version {counter[0]} " + "x" * 60},
                }
            )
        body = PushIn.model_validate(
            {
                "client_id": client_id,
                "batch_id": str(uuid.uuid4()),
                "schema_version": 1,
                "mutations": mutations,
            }
        )
        async with self.resources.db.transaction() as session:
            batch, _ = await sync.accept_push(
                session, self.resources.outbox, self.resources.settings, user, body
            )
        await sync_jobs.apply_batch(self._ctx(sync.APPLY_JOB), sync_jobs.ApplyBatch(batch_id=batch.batch_id))
        self.counts["uploads"] += 1
        self.counts["mutations"] += len(mutations)

    async def export(self) -> None:
        user = random.choice(self.users)
        async with self.resources.db.transaction() as session:
            export, new = await accounts.request_export(session, self.resources.outbox, user)
        if new:
            ctx = self._ctx(accounts.EXPORT_JOB)
            await accounts_jobs.export_data(ctx, accounts_jobs.ExportData(export_id=export.id))
            self.counts["exports"] += 1

    async def push(self) -> None:
        user = random.choice(self.users)
        occasion = push.Occasion(
            f"soak:{uuid.uuid4().hex}",
            user,
            Notification(kind=Kind.TEST),
            None,
            datetime.now(UTC) + timedelta(minutes=10),
        )
        async with self.resources.db.transaction() as session:
            made = await push.create_fan_out(session, [occasion])
            # Finished as the sender would leave them (no provider is called here).
            await session.execute(
                update(PushDelivery)
                .where(PushDelivery.id.in_([d for d, _ in made]))
                .values(status="sent", attempts=1, sent_at=func.now(), finished_at=func.now())
            )
        self.counts["pushes"] += len(made)

    async def paced(self, per_s: float, action: Any) -> None:
        """Run ``action`` ``per_s`` times a second (a few at once), until stopped."""
        started = time.monotonic()
        done = 0
        while not self.stop.is_set():
            due = int((time.monotonic() - started) * per_s) - done
            if due <= 0:
                await asyncio.sleep(0.02)
                continue
            await asyncio.gather(*(action() for _ in range(min(due, 8))))
            done += min(due, 8)

    async def maintain(self) -> list[dict[str, Any]]:
        runs = []
        settings = self.resources.settings
        while not self.stop.is_set():
            now = datetime.now(UTC)
            started = time.monotonic()
            deleted = await retention.run(
                self.resources.db,
                maintenance.rules(settings),
                now=now,
                batch=settings.retention_batch,
                max_batches=settings.retention_max_batches,
            )
            parts = await maintenance.maintain_partitions(self.resources.db, settings, now)
            if self.vacuum is not None:
                for name in TABLES:
                    await self.vacuum.execute(f"VACUUM {name}")
            runs.append({"s": time.monotonic() - started, "deleted": deleted, "partitions": parts})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), self.args.maintain_every)
        return runs

    async def sizes(self) -> dict[str, int]:
        found = {}
        async with self.resources.db.transaction() as session:
            for name in TABLES:
                found[name] = int((await session.execute(text(_SIZE), {"t": name})).scalar_one())
        return found

    async def rows(self) -> dict[str, int]:
        async with self.resources.db.transaction() as session:
            return {
                name: int((await session.execute(text(f"SELECT count(*) FROM {name}"))).scalar_one())
                for name in TABLES
            }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=240.0)
    parser.add_argument("--uploads", type=float, default=20.0, help="uploads per second")
    parser.add_argument("--mutations", type=int, default=20, help="mutations per upload")
    parser.add_argument("--pushes", type=float, default=20.0, help="notifications per second")
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--keep", type=int, default=60, help="every retention setting, seconds")
    parser.add_argument("--maintain-every", type=float, default=10.0)
    parser.add_argument("--sample-every", type=float, default=15.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    prefix = f"hjsoak{uuid.uuid4().hex[:6]}"
    async with private_database() as url:
        settings = Settings(
            env="test",
            database_url=url,
            redis_url=REDIS_URL,
            queue_prefix=prefix,
            db_pool_size=10,
            sync_batch_keep_s=args.keep,
            sync_payload_keep_s=args.keep,
            sync_payload_partition_s=60,
            partition_ahead_s=300,
            outbox_keep_s=args.keep,
            push_delivery_keep_s=args.keep,
            reminder_lookahead_s=0,
            reminder_tolerance_s=0,
            export_keep_s=args.keep,
            export_forget_after_s=0,
            rate_limits_enabled=False,
        )
        resources = Resources.open(settings, application_name="habitjobs-soak")
        try:
            # The migration made hour-wide payload partitions ahead; start from one-minute ones.
            async with resources.db.transaction() as session:
                for p in await partition_ddl.partitions(session, PAYLOAD_PARTITIONS):
                    await session.execute(text(f'DROP TABLE "{p.name}"'))
            await maintenance.maintain_partitions(resources.db, settings, datetime.now(UTC))
            users = []
            async with resources.db.transaction() as session:
                for i in range(args.users):
                    users.append((await get_or_create_user(session, f"soak{i}@example.com")).id)
            for user in users:
                async with resources.db.transaction() as session:
                    await accounts.register_device(
                        session,
                        user,
                        uuid.uuid4(),
                        DevicePut(platform="android", push_token=f"soak-{user.hex}"),
                        max_devices=settings.max_devices_per_user,
                    )
            soak = Soak(resources, users, args)
            direct = await asyncpg.connect(url)
            if await direct.fetchval("SHOW autovacuum") == "off":
                print(
                    "autovacuum is off on this server: the soak vacuums the tables after each maintenance run"
                )
                soak.vacuum = direct
            tasks = [
                asyncio.create_task(soak.paced(args.uploads, soak.upload)),
                asyncio.create_task(soak.paced(1.0, soak.export)),
                asyncio.create_task(soak.paced(args.pushes, soak.push)),
            ]
            maintainer = asyncio.create_task(soak.maintain())
            samples: list[tuple[float, dict[str, int], dict[str, int]]] = []
            started = time.monotonic()
            while (elapsed := time.monotonic() - started) < args.seconds:
                samples.append((elapsed, await soak.sizes(), dict(soak.counts)))
                await asyncio.sleep(min(args.sample_every, max(0.1, args.seconds - elapsed)))
            samples.append((time.monotonic() - started, await soak.sizes(), dict(soak.counts)))
            live_rows = await soak.rows()
            soak.stop.set()
            await asyncio.gather(*tasks)
            runs = await maintainer
            await direct.close()
            await resources.outbox.settle()
        finally:
            await resources.aclose()
            await drop_prefix(prefix)
    _report(args, samples, runs, live_rows)


def _mib(n: float) -> str:
    return f"{n / 2**20:.1f}"


def _report(
    args: argparse.Namespace,
    samples: list[tuple[float, dict[str, int], dict[str, int]]],
    runs: list[Any],
    live_rows: dict[str, int],
) -> None:
    elapsed, _, counts = samples[-1]
    print(
        f"{elapsed:.0f} s: {counts['uploads']} uploads ({counts['uploads'] / elapsed:.1f}/s, "
        f"{counts['mutations']} mutations), {counts['exports']} exports, {counts['pushes']} pushes; "
        f"every keep {args.keep} s, maintenance every {args.maintain_every:.0f} s ({len(runs)} runs, "
        f"longest {max(r['s'] for r in runs):.2f} s)\n"
    )
    print("size of each table over time (MiB):")
    rows = [[f"{t:.0f}", str(c["uploads"]), *(_mib(s[name]) for name in TABLES)] for t, s, c in samples]
    print(table(["s", "uploads", *TABLES], rows))
    third = max(1, len(samples) // 3)
    middle = samples[third : 2 * third] or samples[:1]
    last = samples[2 * third :]
    print("\nlevelling off: the largest size in the last third against the middle third")
    result = []
    for name in TABLES:
        mid = max(s[name] for _, s, _ in middle)
        end = max(s[name] for _, s, _ in last)
        result.append([name, _mib(mid), _mib(end), f"{end / mid:.2f}×" if mid else "-"])
    print(table(["table", "middle third max", "last third max", "ratio"], result))
    # The baseline: what the tables would hold without retention — every row written so far, at the bytes
    # per row measured now.
    _, sizes, _ = samples[-1]
    written = {
        "sync_batches": counts["uploads"],
        "sync_batch_payloads": counts["uploads"],
        "outbox": counts["uploads"] + counts["exports"],
        "push_deliveries": counts["pushes"],
        "data_exports": counts["exports"],
    }
    base = []
    for name in TABLES:
        per_row = sizes[name] / live_rows[name] if live_rows[name] else 0.0
        without = written[name] * per_row
        base.append(
            [
                name,
                str(live_rows[name]),
                f"{per_row:.0f}",
                _mib(sizes[name]),
                _mib(without),
                f"{without / sizes[name]:.1f}×" if sizes[name] else "-",
            ]
        )
    print("\nat the end, against the same workload without retention (rows written × bytes per row):")
    print(table(["table", "live rows", "bytes/row", "with retention MiB", "without MiB", "ratio"], base))
    deleted: dict[str, int] = {}
    for run in runs:
        for rule, n in run["deleted"].items():
            deleted[rule] = deleted.get(rule, 0) + n
    dropped = sum(r["partitions"]["sync_batch_payloads"]["dropped"] for r in runs)
    print(f"\nretention deleted: {deleted}; payload partitions dropped: {dropped}")


if __name__ == "__main__":
    asyncio.run(main())
