"""Retention: rules that delete (or thin out) rows once they are older than a setting, in small batches.

A rule is a name and a sweep: one statement that handles at most ``limit`` rows due at ``now`` and says
how many it handled. :func:`run` gives every rule its own short transactions, one batch each, until the
rule has nothing left or it used its share of the run (the next run goes on), so retention never holds
locks for long nor one table's backlog starves the others. Domains declare their rules;
:mod:`habitjobs.maintenance.jobs` gathers them into the periodic ``maintenance.retention`` job.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from habitjobs.db.engine import Database

Sweep = Callable[[AsyncSession, datetime, int], Awaitable[int]]


@dataclass(frozen=True)
class Rule:
    name: str
    sweep: Sweep


async def run(
    db: Database, rules: Sequence[Rule], *, now: datetime, batch: int, max_batches: int
) -> dict[str, int]:
    """Apply every rule in batches of ``batch`` rows (at most ``max_batches`` per rule and run).

    Returns how many rows each rule handled.
    """
    handled: dict[str, int] = {}
    for rule in rules:
        total = 0
        for _ in range(max_batches):
            async with db.transaction() as session:
                count = await rule.sweep(session, now, batch)
            total += count
            if count < batch:
                break
        handled[rule.name] = total
    return handled
