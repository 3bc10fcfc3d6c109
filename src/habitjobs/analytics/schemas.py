"""API answers of statistics and streaks (read from the precomputed tables, never aggregated per request)."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Longest ranges one request may ask for.
MAX_DAILY_DAYS = 366
MAX_WEEKLY_DAYS = 53 * 7


# Rates are exact decimals in the database; JSON clients want numbers, not strings.
Rate = Annotated[Decimal, PlainSerializer(float, return_type=float, when_used="json")]


class _Rates(BaseModel):
    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class DailyStatsOut(_Rates):
    local_date: date
    habits_due: int
    habits_done: int
    habits_skipped: int
    completion_rate: Rate | None
    perfect_day: bool
    morning_pct: Rate | None
    evening_pct: Rate | None
    focus_sessions: int
    focus_seconds: int
    longest_focus_seconds: int
    computed_at: datetime
    # False: computed before the day ended (a same-day recompute after late data); the figures may still
    # change. The roll-up after the day's end makes it final.
    final: bool


class DailyStatsPage(BaseModel):
    """The computed days in the range, oldest first; a day not computed (yet) is absent."""

    from_: date = Field(serialization_alias="from")
    to: date
    days: list[DailyStatsOut]


class WeekChange(_Rates):
    """This week minus the week before (present only when the week before was computed)."""

    habits_done: int
    focus_seconds: int
    days_active: int
    avg_completion_rate: Rate | None


class WeeklyStatsOut(_Rates):
    week_start: date
    days_active: int
    perfect_days: int
    habits_done: int
    avg_completion_rate: Rate | None
    focus_seconds: int
    best_streak: int
    computed_at: datetime
    change: WeekChange | None = None


class WeeklyStatsPage(BaseModel):
    """The closed weeks whose first day lies in the range, oldest first."""

    from_: date = Field(serialization_alias="from")
    to: date
    weeks: list[WeeklyStatsOut]


class StreakOut(BaseModel):
    habit_id: uuid.UUID
    current_streak: int
    best_streak: int
    last_done_date: date | None
    computed_through: date | None  # None: not computed yet
    computed_at: datetime | None
