"""HTTP routes: the current user's statistics and streaks, read from the precomputed tables."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query

from habitjobs.analytics import service
from habitjobs.analytics.schemas import DailyStatsPage, StreakOut, WeeklyStatsPage
from habitjobs.api.deps import CurrentUser, ResourcesDep
from habitjobs.api.openapi import error_responses
from habitjobs.bounds import LocalDay

router = APIRouter(prefix="/v1", tags=["statistics"])

From = Annotated[LocalDay, Query(alias="from", description="first local day (YYYY-MM-DD), inclusive")]
To = Annotated[LocalDay, Query(description="last local day (YYYY-MM-DD), inclusive")]


@router.get("/stats/daily")
async def daily_stats(first: From, to: To, user_id: CurrentUser, resources: ResourcesDep) -> DailyStatsPage:
    """One row per computed local day in the range (at most 366 days)."""
    async with resources.db.transaction() as session:
        return await service.daily_stats(session, user_id, first, to)


@router.get("/stats/weekly")
async def weekly_stats(first: From, to: To, user_id: CurrentUser, resources: ResourcesDep) -> WeeklyStatsPage:
    """Closed weeks whose first day is in the range (at most 53 weeks), with the change on the week before."""
    async with resources.db.transaction() as session:
        return await service.weekly_stats(session, user_id, first, to)


@router.get("/habits/{habit_id}/streak", responses=error_responses(404))
async def habit_streak(habit_id: uuid.UUID, user_id: CurrentUser, resources: ResourcesDep) -> StreakOut:
    """The habit's current and best streak as of its last computation; 404 for anyone else's habit."""
    async with resources.db.transaction() as session:
        return await service.habit_streak(session, user_id, habit_id)
