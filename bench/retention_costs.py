"""What removing expired rows costs: deleting them in small batches (``maintenance.retention``) against
dropping the partition that holds them (``maintenance.partitions``), side by side in one run.

For each row shape — an upload payload (~3.2 KB of JSON, stored out of line in TOAST) and a small row
(~200 B, like an outbox row or a push delivery) — the same number of rows is written twice: into a plain
table with an index on its time column, and into an hourly-partitioned table. Then the expired rows go:

- batched delete: ``DELETE … WHERE id = ANY(ARRAY(SELECT id … ORDER BY at LIMIT 500))``, one short
  transaction per batch, until none is left; then ``VACUUM`` (which a delete needs before the space can be
  reused; the file does not shrink);
- drop: ``DROP TABLE`` of the expired partitions, one statement each: the space goes back at once.

Prints time per million rows, rows per second, the database size freed, and the ratio, per repetition
(A B A B) and as medians. Bounded: a few tens of thousands of rows per repetition, in a private database.

    .venv/bin/python -m bench.retention_costs [--rows 20000] [--reps 3]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import asyncpg

from bench._common import machine, median, private_database, table

BATCH = 500
HOURS = 4


@dataclass(frozen=True)
class Shape:
    name: str
    # SQL producing one row's payload from the series value g.
    payload_sql: str


SHAPES = [
    Shape(
        "upload payload ~3.2 KB",
        "(SELECT jsonb_agg(jsonb_build_object('op', 'upsert', 'id', md5(g::text || ':' || k), "
        "'data', md5(k || ':' || g), 'at', g)) FROM generate_series(1, 28) AS k)",
    ),
    Shape("small row ~200 B", "jsonb_build_object('job', md5(g::text), 'a', md5(g::text || 'a'), 'n', g)"),
]


async def _setup(conn: asyncpg.Connection, shape: Shape, rows: int) -> None:
    await conn.execute("DROP TABLE IF EXISTS bench_plain, bench_parted")
    await conn.execute(
        "CREATE TABLE bench_plain (id bigserial PRIMARY KEY, at timestamptz NOT NULL, body jsonb NOT NULL)"
    )
    await conn.execute("CREATE INDEX ON bench_plain (at)")
    await conn.execute(
        "CREATE TABLE bench_parted (id bigserial, at timestamptz NOT NULL, body jsonb NOT NULL, "
        "PRIMARY KEY (id, at)) PARTITION BY RANGE (at)"
    )
    for h in range(HOURS + 1):
        await conn.execute(
            f"CREATE TABLE bench_parted_{h} PARTITION OF bench_parted FOR VALUES FROM "
            f"('2026-01-01'::timestamptz + interval '{h} hours') "
            f"TO ('2026-01-01'::timestamptz + interval '{h + 1} hours')"
        )
    for name in ("bench_plain", "bench_parted"):
        # The expired rows (the first HOURS hours), then one hour that stays.
        await conn.execute(
            f"INSERT INTO {name} (at, body) SELECT '2026-01-01'::timestamptz + "
            f"(g * interval '{HOURS * 3600 / rows} seconds'), {shape.payload_sql} "
            f"FROM generate_series(0, {rows - 1}) AS g"
        )
        await conn.execute(
            f"INSERT INTO {name} (at, body) SELECT '2026-01-01'::timestamptz + interval '{HOURS} hours' "
            f"+ (g * interval '1 second'), {shape.payload_sql} FROM generate_series(0, 999) AS g"
        )
    await conn.execute("VACUUM ANALYZE bench_plain")
    await conn.execute("VACUUM ANALYZE bench_parted")


async def _size(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT pg_database_size(current_database())"))


async def _batched_delete(conn: asyncpg.Connection) -> tuple[float, float, int, int]:
    """Seconds deleting, seconds vacuuming, rows deleted, bytes freed."""
    before = await _size(conn)
    cutoff = f"'2026-01-01'::timestamptz + interval '{HOURS} hours'"
    deleted = 0
    started = time.perf_counter()
    while True:
        async with conn.transaction():
            status = await conn.execute(
                "DELETE FROM bench_plain WHERE id = ANY(ARRAY(SELECT id FROM bench_plain "
                f"WHERE at < {cutoff} ORDER BY at LIMIT {BATCH}))"
            )
        count = int(status.split()[-1])
        deleted += count
        if count < BATCH:
            break
    deleting = time.perf_counter() - started
    started = time.perf_counter()
    await conn.execute("VACUUM bench_plain")
    vacuuming = time.perf_counter() - started
    return deleting, vacuuming, deleted, before - await _size(conn)


async def _drop(conn: asyncpg.Connection) -> tuple[float, int, int]:
    """Seconds dropping, rows gone, bytes freed."""
    before = await _size(conn)
    cutoff = f"'2026-01-01'::timestamptz + interval '{HOURS} hours'"
    gone = int(await conn.fetchval(f"SELECT count(*) FROM bench_parted WHERE at < {cutoff}"))
    started = time.perf_counter()
    for h in range(HOURS):
        async with conn.transaction():
            await conn.execute("SET LOCAL lock_timeout = 2000")
            await conn.execute(f"DROP TABLE bench_parted_{h}")
    dropping = time.perf_counter() - started
    return dropping, gone, before - await _size(conn)


def _per_million(seconds: float, rows: int) -> str:
    return f"{seconds / rows * 1e6:.1f} s"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=20_000, help="expired rows per table and repetition")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(f"{args.rows} expired rows (+1,000 kept) per table and repetition, batches of {BATCH}\n")
    summary: list[list[str]] = []
    async with private_database() as url:
        conn = await asyncpg.connect(url)
        try:
            for shape in SHAPES:
                rows: list[list[str]] = []
                deletes: list[float] = []
                deletes_vacuum: list[float] = []
                drops: list[float] = []
                freed_delete: list[int] = []
                freed_drop: list[int] = []
                for rep in range(args.reps):
                    await _setup(conn, shape, args.rows)
                    # A B (then the next repetition: A B again).
                    deleting, vacuuming, deleted, freed_a = await _batched_delete(conn)
                    dropping, gone, freed_b = await _drop(conn)
                    assert deleted == gone == args.rows, (deleted, gone)
                    deletes.append(deleting)
                    deletes_vacuum.append(deleting + vacuuming)
                    drops.append(dropping)
                    freed_delete.append(freed_a)
                    freed_drop.append(freed_b)
                    rows.append(
                        [
                            str(rep + 1),
                            f"{deleting:.3f} s + vacuum {vacuuming:.3f} s",
                            f"{freed_a / 2**20:.1f} MiB",
                            f"{dropping * 1000:.1f} ms",
                            f"{freed_b / 2**20:.1f} MiB",
                            f"{(deleting + vacuuming) / dropping:.0f}×",
                        ]
                    )
                print(f"## {shape.name}")
                print(
                    table(
                        ["rep", "batched delete (A)", "freed (A)", "drop partitions (B)", "freed (B)", "A/B"],
                        rows,
                    )
                )
                print()
                d, dv, p = median(deletes), median(deletes_vacuum), median(drops)
                summary.append(
                    [
                        shape.name,
                        f"{_per_million(d, args.rows)} ({args.rows / d:,.0f} rows/s)",
                        _per_million(dv, args.rows),
                        f"{median([float(x) for x in freed_delete]) / 2**20:.1f} MiB",
                        f"{p * 1000:.1f} ms for {HOURS} partitions",
                        f"{median([float(x) for x in freed_drop]) / 2**20:.1f} MiB",
                        f"{dv / p:.0f}×",
                    ]
                )
        finally:
            await conn.execute("DROP TABLE IF EXISTS bench_plain, bench_parted")
            await conn.close()
    print("## medians")
    print(
        table(
            [
                "rows",
                "batched delete per 1M rows",
                "+ vacuum per 1M",
                "freed by delete+vacuum",
                "drop",
                "freed by drop",
                "delete+vacuum / drop",
            ],
            summary,
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
