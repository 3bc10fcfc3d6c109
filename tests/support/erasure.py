"""What account-deletion tests need: a user with data in every table the schema ties to a user, and a
census of where a user's id (and rows) can be found — in PostgreSQL and in Redis.

The tables are read from the database's catalog, never listed by hand, so a table added later is
checked without anybody touching these tests: a table with a ``user_id`` column or a reference to
``users`` holds user rows; so does every table that references such a table (its rows belong to the
user through that reference, like a note about a device).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import redis.asyncio as aioredis
from sqlalchemy import text

from habitjobs.dashboard import repository as audit
from habitjobs.dashboard.sessions import for_settings as sessions_for
from habitjobs.push import service as push_service
from habitjobs.push.schemas import Notification
from habitjobs.resources import Resources
from tests.support.analytics_data import run_rollup
from tests.support.sync import Device
from tests.support.workers import drain


@dataclass(frozen=True)
class Reference:
    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]
    action: str  # pg_constraint.confdeltype: c cascade, n set null, a no action, r restrict, d set default


@dataclass
class Schema:
    tables: list[str]
    primary_keys: dict[str, list[str]]
    references: list[Reference]
    user_id_tables: set[str]

    def user_columns(self, table: str) -> list[str]:
        """Columns of ``table`` that hold a user's id."""
        columns = {r.columns[0] for r in self.references if r.table == table and r.target == "users"}
        if table in self.user_id_tables:
            columns.add("user_id")
        if table == "users":
            columns.add("id")
        return sorted(columns)

    def holding_tables(self) -> list[str]:
        """Every table that may hold a user's rows: directly, or through references to such tables."""
        holding = {t for t in self.tables if self.user_columns(t)}
        grew = True
        while grew:
            grew = False
            for ref in self.references:
                if ref.target in holding and ref.table not in holding and ref.target != "users":
                    holding.add(ref.table)
                    grew = True
        return sorted(holding)

    def only_cleared(self, table: str) -> bool:
        """The table refers to users only by references the database clears (SET NULL): its rows stay."""
        cleared = {
            r.columns[0]
            for r in self.references
            if r.table == table and r.target == "users" and r.action == "n"
        }
        columns = set(self.user_columns(table))
        return bool(columns) and columns <= cleared

    def condition(self, table: str, depth: int = 0) -> str:
        """SQL (alias ``t{depth}``) true for the rows of ``table`` that are the user's (:user_id)."""
        alias = f"t{depth}"
        parts = [f"{alias}.{c} = :user_id" for c in self.user_columns(table)]
        for ref in self.references:
            linked = ref.table == table and ref.target not in ("users", table) and depth < 4
            if linked and ref.target in self.holding_tables():
                inner = f"t{depth + 1}"
                on = " AND ".join(
                    f"{inner}.{tc} = {alias}.{c}"
                    for c, tc in zip(ref.columns, ref.target_columns, strict=True)
                )
                parts.append(
                    f"EXISTS (SELECT 1 FROM {ref.target} {inner} WHERE {on} AND "
                    f"({self.condition(ref.target, depth + 1)}))"
                )
        return " OR ".join(parts) or "false"


async def read_schema(resources: Resources) -> Schema:
    async with resources.db.transaction() as session:
        tables = [
            r[0]
            for r in await session.execute(
                text(
                    "SELECT table_name::text FROM information_schema.tables"
                    " WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'"
                    " AND table_name <> 'alembic_version' ORDER BY 1"
                )
            )
        ]
        keys: dict[str, list[str]] = {}
        for table, column in await session.execute(
            text(
                "SELECT c.relname::text, a.attname::text FROM pg_index i"
                " JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
                " WHERE i.indisprimary AND n.nspname = current_schema() ORDER BY 1, a.attnum"
            )
        ):
            keys.setdefault(table, []).append(column)
        references = [
            Reference(r.table, tuple(r.columns), r.target, tuple(r.target_columns), r.action)
            for r in await session.execute(
                text(
                    "SELECT s.relname::text AS table, d.relname::text AS target,"
                    " c.confdeltype::text AS action,"
                    " ARRAY(SELECT attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)"
                    "       JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i)"
                    "       AS columns,"
                    " ARRAY(SELECT attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)"
                    "       JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)"
                    "       AS target_columns"
                    " FROM pg_constraint c JOIN pg_class s ON s.oid = c.conrelid"
                    " JOIN pg_class d ON d.oid = c.confrelid"
                    " JOIN pg_namespace n ON n.oid = s.relnamespace"
                    " WHERE c.contype = 'f' AND n.nspname = current_schema()"
                )
            )
        ]
        with_user_id = {
            r[0]
            for r in await session.execute(
                text(
                    "SELECT table_name::text FROM information_schema.columns"
                    " WHERE table_schema = current_schema() AND column_name = 'user_id'"
                )
            )
        }
    return Schema(tables, keys, references, with_user_id & set(tables))


@dataclass
class Census:
    """Every row of every table, by primary key, split into the user's rows and everybody else's."""

    users: dict[str, dict[str, str]] = field(default_factory=dict)
    others: dict[str, dict[str, str]] = field(default_factory=dict)


async def take_census(resources: Resources, schema: Schema, user_id: uuid.UUID) -> Census:
    census = Census()
    holding = set(schema.holding_tables())
    async with resources.db.transaction() as session:
        for table in schema.tables:
            key = ", ".join(schema.primary_keys[table])
            mine = schema.condition(table) if table in holding else "false"
            rows = await session.execute(
                text(
                    f"SELECT jsonb_build_array({key})::text AS key, to_jsonb(t0)::text AS row,"
                    f" ({mine}) AS mine FROM {table} t0"
                ),
                {"user_id": user_id},
            )
            census.users[table], census.others[table] = {}, {}
            for row in rows:
                (census.users if row.mine else census.others)[table][row.key] = row.row
    return census


def assert_erased_and_others_untouched(schema: Schema, before: Census, after: Census) -> None:
    """The user's rows are gone (or, where the schema only clears the reference, kept without it); every
    other row is exactly as it was, and no row appeared."""
    for table in schema.tables:
        now = {**after.users[table], **after.others[table]}
        for key in before.users[table]:
            if schema.only_cleared(table):
                assert key in now, (table, key)
            else:
                assert key not in now, (table, key)
        for key, row in before.others[table].items():
            assert now.get(key) == row, f"{table} {key} changed: {row} → {now.get(key)}"
        unexpected = set(now) - set(before.others[table]) - set(before.users[table])
        assert unexpected == set(), (table, unexpected)


async def tables_mentioning(resources: Resources, schema: Schema, needle: str) -> dict[str, int]:
    """Tables where some row's text holds ``needle`` anywhere (any column, JSON included): counts."""
    found: dict[str, int] = {}
    async with resources.db.transaction() as session:
        for table in schema.tables:
            count = await session.scalar(
                text(f"SELECT count(*) FROM {table} t WHERE t::text LIKE :pattern"),
                {"pattern": f"%{needle}%"},
            )
            if count:
                found[table] = int(count)
    return found


async def redis_keys_mentioning(redis_url: str, prefix: str, needle: str) -> list[str]:
    """Every key under ``prefix`` whose name or content holds ``needle`` (jobs, sets, events, …)."""
    client = aioredis.from_url(redis_url, decode_responses=True)
    found: list[str] = []
    try:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            if needle in key:
                found.append(key)
                continue
            kind = await client.type(key)
            values: list[Any]
            if kind == "hash":
                values = list((await client.hgetall(key)).values())
            elif kind == "list":
                values = await client.lrange(key, 0, -1)
            elif kind == "set":
                values = list(await client.smembers(key))
            elif kind == "zset":
                values = await client.zrange(key, 0, -1)
            elif kind == "stream":
                values = [str(fields) for _, fields in await client.xrange(key)]
            elif kind == "string":
                values = [await client.get(key)]
            else:
                values = []
            if any(needle in str(v) for v in values):
                found.append(key)
    finally:
        await client.aclose()
    return found


DAY = date(2026, 3, 2)


@dataclass(frozen=True)
class Seeded:
    user_id: uuid.UUID
    headers: dict[str, str]
    zone: str  # one zone per user: the zone's nightly run then ends on this user


async def seed_users(resources: Resources, client: httpx.AsyncClient, users: list[Seeded]) -> list[uuid.UUID]:
    """Data in every table a user's rows can be in, through the API and the real jobs; returns each
    user's device id.

    Leaves behind, per user, a delayed statistics recompute in Redis that names the user, a queued push
    job, and the finished records of the user's export, merges and recompute.
    """
    fast = resources.settings
    resources.settings = fast.model_copy(update={"sync_recompute_debounce_ms": 0})
    try:
        devices, phones, habits = [], [], []
        for user in users:
            devices.append(await _seed_first(client, user))
        for user in users:
            phone, habit_id = _offline_data()
            phones.append(phone)
            habits.append(habit_id)
            answer = await client.post("/v1/sync/push", headers=user.headers, json=phone.batch())
            assert answer.status_code == 202
        await drain(resources, queues=["sync"])
        await drain(resources, queues=["analytics"])  # the recomputes the merges asked for: stats, streaks
        for user in users:
            await run_rollup(resources, user.zone, DAY)  # the zone's nightly run: its cursor is this user
        # Late data: dirty marks, and a debounced recompute delayed in Redis.
        resources.settings = fast.model_copy(update={"sync_recompute_debounce_ms": 3_600_000})
        for user, phone, habit_id in zip(users, phones, habits, strict=True):
            phone.check(habit_id, DAY - timedelta(days=2), 8)
            answer = await client.post("/v1/sync/push", headers=user.headers, json=phone.batch())
            assert answer.status_code == 202
        await drain(resources, queues=["sync"])
        for user in users:
            async with resources.db.transaction() as session:
                ids = await push_service.create_deliveries(
                    session,
                    user.user_id,
                    Notification.test(),
                    dedupe_key=f"test:{uuid.uuid4()}",
                    not_after=datetime.now(UTC) + timedelta(minutes=10),
                )
                assert ids
                # Staged and queued; no push worker runs in these tests.
                await push_service.stage_send(session, resources.outbox, ids, user_id=user.user_id)
            assert (await client.post("/v1/me/exports", headers=user.headers)).status_code == 202
            # An operator's traces: an audit log entry, a dashboard session.
            async with resources.db.transaction() as session:
                await audit.record(session, user.user_id, "sign in", "dashboard", "seeded")
            await sessions_for(resources.producer.redis, resources.settings).open(user.user_id)
        await drain(resources, queues=["default"])
        await resources.outbox.settle()
        return devices
    finally:
        resources.settings = fast


async def _seed_first(client: httpx.AsyncClient, user: Seeded) -> uuid.UUID:
    assert (
        await client.patch("/v1/me", headers=user.headers, json={"timezone": user.zone})
    ).status_code == 200
    device_id = uuid.uuid4()
    device = {"platform": "android", "push_token": f"fcm-{uuid.uuid4().hex}"}
    assert (
        await client.put(f"/v1/devices/{device_id}", headers=user.headers, json=device)
    ).status_code == 200
    return device_id


def _offline_data() -> tuple[Device, uuid.UUID]:
    phone = Device()
    routine_id, habit_id, gone_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    phone.record("routine", "upsert", routine_id, 0, {"kind": "morning", "name": "Morning"})
    phone.record("habit", "upsert", habit_id, 1, {"name": "Stretch", "routine_id": str(routine_id)})
    phone.record("habit", "upsert", gone_id, 2, {"name": "Dropped"})
    phone.record("habit", "delete", gone_id, 3)  # a tombstone
    phone.check(habit_id, DAY, 4)
    phone.check(habit_id, DAY - timedelta(days=1), 5)
    started = datetime(2026, 3, 2, 7, 0, tzinfo=UTC)
    focus = {"started_at": started.isoformat(), "local_date": DAY.isoformat(), "focus_seconds": 1500}
    phone.record("focus_session", "upsert", uuid.uuid4(), 6, focus)
    reminder = {"kind": "habit", "habit_id": str(habit_id), "local_time": "07:30"}
    phone.record("reminder", "upsert", uuid.uuid4(), 7, reminder)
    return phone, habit_id
