"""values in range: stored instants outside the supported range are brought back into it

Revision ID: 0011
Revises: 0016

Uploads and API bodies now refuse instants outside [1970-01-01, 2100-01-01) UTC (habitjobs.bounds).
Rows written before could hold one — e.g. an ``archived_at`` of 9999-12-31T23:59:59-14:00, which
PostgreSQL keeps as year 10000 and no client library can read back, so every read of the user's habits
and their export failed. Each such instant is set to the nearest supported one (an archive date far in
the future stays far in the future), and so is a habit's ``created_local_date``. Nothing else changes;
there is no schema change, and downgrading leaves the values as they are.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LOW = "TIMESTAMPTZ '1970-01-01 00:00:00+00'"
_HIGH = "TIMESTAMPTZ '2099-12-31 23:59:59.999999+00'"

_INSTANTS = {
    "routines": ("client_updated_at", "deleted_at"),
    "habits": ("client_updated_at", "deleted_at", "archived_at"),
    "habit_completions": ("client_updated_at", "deleted_at", "completed_at"),
    "focus_sessions": ("client_updated_at", "deleted_at", "started_at", "ended_at"),
    "reminders": ("client_updated_at", "deleted_at", "next_fire_at"),
}


def upgrade() -> None:
    for table, columns in _INSTANTS.items():
        for column in columns:
            op.execute(
                f"UPDATE {table} SET {column} = LEAST(GREATEST({column}, {_LOW}), {_HIGH}) "
                f"WHERE {column} < {_LOW} OR {column} > {_HIGH}"
            )
    op.execute(
        "UPDATE habits SET created_local_date = LEAST(GREATEST(created_local_date, DATE '1970-01-01'), "
        "DATE '2099-12-31') "
        "WHERE created_local_date < DATE '1970-01-01' OR created_local_date > DATE '2099-12-31'"
    )


def downgrade() -> None:
    pass
