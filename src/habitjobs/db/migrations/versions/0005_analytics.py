"""analytics: streaks and statistics tables

Revision ID: 0005
Revises: 0004

Adds the derived tables (habit_streaks, daily_stats, weekly_stats), the nightly run bookkeeping
(analytics_runs), and two access paths the roll-ups need on existing tables: users by zone in id order,
and focus sessions by user and local day.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _user_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["user_id"], ["users.id"], name=op.f(f"fk_{table}_user_id_users"), ondelete="CASCADE"
    )


def upgrade() -> None:
    op.create_table(
        "habit_streaks",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("habit_id", sa.Uuid(), nullable=False),
        sa.Column("current_streak", sa.Integer(), nullable=False),
        sa.Column("best_streak", sa.Integer(), nullable=False),
        sa.Column("last_done_date", sa.Date(), nullable=True),
        sa.Column("computed_through", sa.Date(), nullable=False),
        sa.Column("habit_version", sa.BigInteger(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["habit_id"], ["habits.id"], name=op.f("fk_habit_streaks_habit_id_habits"), ondelete="CASCADE"
        ),
        _user_fk("habit_streaks"),
        sa.PrimaryKeyConstraint("user_id", "habit_id", name=op.f("pk_habit_streaks")),
        postgresql_with={"fillfactor": 70},
    )
    op.create_index(op.f("ix_habit_streaks_habit_id"), "habit_streaks", ["habit_id"], unique=False)
    op.create_table(
        "daily_stats",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("habits_due", sa.Integer(), nullable=False),
        sa.Column("habits_done", sa.Integer(), nullable=False),
        sa.Column("habits_skipped", sa.Integer(), nullable=False),
        sa.Column("completion_rate", sa.Numeric(5, 4), nullable=True),
        sa.Column("perfect_day", sa.Boolean(), nullable=False),
        sa.Column("morning_pct", sa.Numeric(5, 2), nullable=True),
        sa.Column("evening_pct", sa.Numeric(5, 2), nullable=True),
        sa.Column("focus_sessions", sa.Integer(), nullable=False),
        sa.Column("focus_seconds", sa.BigInteger(), nullable=False),
        sa.Column("longest_focus_seconds", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        _user_fk("daily_stats"),
        sa.PrimaryKeyConstraint("user_id", "local_date", name=op.f("pk_daily_stats")),
    )
    op.create_table(
        "weekly_stats",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("week_start", sa.Date(), nullable=False),
        sa.Column("days_active", sa.Integer(), nullable=False),
        sa.Column("perfect_days", sa.Integer(), nullable=False),
        sa.Column("habits_done", sa.Integer(), nullable=False),
        sa.Column("avg_completion_rate", sa.Numeric(5, 4), nullable=True),
        sa.Column("focus_seconds", sa.BigInteger(), nullable=False),
        sa.Column("best_streak", sa.Integer(), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        _user_fk("weekly_stats"),
        sa.PrimaryKeyConstraint("user_id", "week_start", name=op.f("pk_weekly_stats")),
    )
    op.create_table(
        "analytics_runs",
        sa.Column("timezone", sa.Text(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("users_done", sa.Integer(), nullable=False),
        sa.Column("last_user_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("status IN ('running', 'finished')", name=op.f("ck_analytics_runs_status")),
        sa.PrimaryKeyConstraint("timezone", "local_date", name=op.f("pk_analytics_runs")),
    )
    op.create_index("ix_users_timezone_id", "users", ["timezone", "id"], unique=False)
    op.create_index(
        "ix_focus_sessions_user_id_local_date", "focus_sessions", ["user_id", "local_date"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_focus_sessions_user_id_local_date", table_name="focus_sessions")
    op.drop_index("ix_users_timezone_id", table_name="users")
    op.drop_table("analytics_runs")
    op.drop_table("weekly_stats")
    op.drop_table("daily_stats")
    op.drop_index(op.f("ix_habit_streaks_habit_id"), table_name="habit_streaks")
    op.drop_table("habit_streaks")
