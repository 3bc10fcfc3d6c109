"""Erasing one user's rows from every table, in bounded chunks — the tables found from the database's own
catalog, so that a table added later is covered without anybody remembering to list it here.

Which rows are a user's, read from the schema:

- a column that references ``users`` with ``ON DELETE CASCADE`` (or no action): rows whose value is the
  user's id (``habits.user_id``, ``push_deliveries.user_id``, …);
- a column named ``user_id`` without a foreign key (``outbox.user_id``): the same;
- a table with no such column that references a table holding the user's rows (``ON DELETE CASCADE`` or
  no action) — the rows reachable through those references: erased before the rows they point at.

A reference with ``ON DELETE SET NULL`` (``account_deletions.user_id``, ``analytics_runs.last_user_id``)
marks a row that mentions the user without being theirs: the database clears the reference when the
user's row goes, at the very end.

Partitioned tables are erased through their parent (a partition is not a table of its own here).

Tables are erased children first (the order of their references), so that no chunk's delete cascades
into an unbounded number of rows. Each chunk is ``DELETE … WHERE ctid = ANY(ARRAY(SELECT ctid … LIMIT n
FOR UPDATE))``: a TID scan over at most ``n`` rows, one short transaction each.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

USERS = "users"
# pg_constraint.confdeltype: the delete actions that make a referencing row part of the referenced one.
_OWNING_ACTIONS = frozenset({"c", "a", "r"})  # cascade, no action, restrict

_FOREIGN_KEYS = text(
    """
    SELECT src.relname::text AS source, dst.relname::text AS target, c.confdeltype::text AS action,
           ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i) AS columns,
           ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
                 JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
               AS target_columns
    FROM pg_constraint c
    JOIN pg_class src ON src.oid = c.conrelid
    JOIN pg_class dst ON dst.oid = c.confrelid
    JOIN pg_namespace ns ON ns.oid = src.relnamespace
    WHERE c.contype = 'f' AND ns.nspname = current_schema() AND NOT src.relispartition
    ORDER BY 1, 2, 4
    """
)
_USER_ID_COLUMNS = text(
    """
    SELECT c.table_name::text FROM information_schema.columns c
    JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
    JOIN pg_class pc ON pc.relname = c.table_name
    JOIN pg_namespace pn ON pn.oid = pc.relnamespace AND pn.nspname = c.table_schema
    WHERE c.table_schema = current_schema() AND c.column_name = 'user_id' AND t.table_type = 'BASE TABLE'
      AND NOT pc.relispartition
    ORDER BY 1
    """
)


@dataclass(frozen=True)
class ForeignKey:
    source: str
    target: str
    action: str
    columns: tuple[str, ...]
    target_columns: tuple[str, ...]


@dataclass(frozen=True)
class Target:
    """One table to erase from, and which of its rows are the user's (an SQL condition on alias t0)."""

    table: str
    condition: str
    # Whether deleting the user's row would also remove these rows (a cascading reference): the final
    # step then need not sweep this table once more.
    cascades: bool


@dataclass
class _Node:
    owner_columns: list[str] = field(default_factory=list)
    parents: list[ForeignKey] = field(default_factory=list)  # owning references to other erased tables


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def plan_erasure(foreign_keys: list[ForeignKey], user_id_tables: list[str]) -> list[Target]:
    """Every table holding a user's rows, children first (pure: from the catalog's facts)."""
    nodes: dict[str, _Node] = {}
    cascading: set[str] = set()
    not_owning = {
        (fk.source, fk.columns[0])
        for fk in foreign_keys
        if fk.target == USERS and len(fk.columns) == 1 and fk.action not in _OWNING_ACTIONS
    }
    for fk in foreign_keys:
        if (
            fk.target == USERS
            and fk.source != USERS
            and len(fk.columns) == 1
            and fk.action in _OWNING_ACTIONS
        ):
            _add_owner(nodes.setdefault(fk.source, _Node()), fk.columns[0])
            if fk.action == "c":
                cascading.add(fk.source)
    for table in user_id_tables:
        if table != USERS and (table, "user_id") not in not_owning:
            _add_owner(nodes.setdefault(table, _Node()), "user_id")
    # Tables reachable through owning references from tables known to hold the user's rows (and the
    # references between such tables, which decide the order).
    changed = True
    while changed:
        changed = False
        for fk in foreign_keys:
            if fk.target in (USERS, fk.source) or fk.action not in _OWNING_ACTIONS or fk.target not in nodes:
                continue
            node = nodes.setdefault(fk.source, _Node())
            if fk not in node.parents:
                node.parents.append(fk)
                changed = True
    changed = True
    while changed:
        changed = False
        for table, node in nodes.items():
            if table not in cascading and any(
                fk.action == "c" and fk.target in cascading for fk in node.parents
            ):
                cascading.add(table)
                changed = True
    return [Target(t, _condition(t, nodes, 0, frozenset()), t in cascading) for t in _children_first(nodes)]


def _add_owner(node: _Node, column: str) -> None:
    if column not in node.owner_columns:
        node.owner_columns.append(column)


def _condition(table: str, nodes: dict[str, _Node], depth: int, seen: frozenset[str]) -> str:
    alias = f"t{depth}"
    node = nodes[table]
    if node.owner_columns:
        return " OR ".join(f"{alias}.{quote(c)} = :user_id" for c in node.owner_columns)
    parts = []
    for fk in node.parents:
        if fk.target in seen:
            continue
        inner = f"t{depth + 1}"
        join = " AND ".join(
            f"{inner}.{quote(tc)} = {alias}.{quote(c)}"
            for c, tc in zip(fk.columns, fk.target_columns, strict=True)
        )
        parent = _condition(fk.target, nodes, depth + 1, seen | {table})
        parts.append(f"EXISTS (SELECT 1 FROM {quote(fk.target)} {inner} WHERE {join} AND ({parent}))")
    return " OR ".join(parts) or "false"


def _children_first(nodes: dict[str, _Node]) -> list[str]:
    """Tables ordered so that a table comes before every table it references (cycles: by name)."""
    referenced_by: dict[str, set[str]] = {t: set() for t in nodes}
    for table, node in nodes.items():
        for fk in node.parents:
            if fk.target != table:
                referenced_by[fk.target].add(table)
    order: list[str] = []
    remaining = dict(referenced_by)
    while remaining:
        ready = sorted(t for t, children in remaining.items() if not children - set(order))
        batch = ready or [min(remaining)]
        for table in batch:
            order.append(table)
            del remaining[table]
    return order


async def read_plan(session: AsyncSession) -> list[Target]:
    """The erasure plan of the database ``session`` is connected to."""
    fks = [
        ForeignKey(r.source, r.target, r.action, tuple(r.columns), tuple(r.target_columns))
        for r in await session.execute(_FOREIGN_KEYS)
    ]
    tables = [r[0] for r in await session.execute(_USER_ID_COLUMNS)]
    return plan_erasure(fks, tables)


async def erase_chunk(session: AsyncSession, target: Target, user_id: uuid.UUID, limit: int | None) -> int:
    """Delete up to ``limit`` (None: all) of the user's rows in ``target``; returns how many went."""
    table = quote(target.table)
    params: dict[str, object] = {"user_id": user_id}
    if limit is None:
        statement = f"DELETE FROM {table} t0 WHERE {target.condition}"
    else:
        chosen = f"SELECT t0.ctid FROM {table} t0 WHERE {target.condition} LIMIT :limit FOR UPDATE"
        # The condition again: a ctid is unique within one partition only, and the same ctid in another
        # partition of a partitioned table (sync_batch_payloads) may be another user's row.
        statement = f"DELETE FROM {table} t0 WHERE t0.ctid = ANY(ARRAY({chosen})) AND ({target.condition})"
        params["limit"] = limit
    result = await session.execute(text(statement), params)
    return int(getattr(result, "rowcount", 0) or 0)
