"""analytics: daily rows say whether they are final

Revision ID: 0013
Revises: 0020

- daily_stats.final: false for a row computed before its day ended (a same-day recompute after late
  data); the roll-up after the day's end makes it true. Existing rows were written by the nightly roll-up
  (after their day ended) or by a recompute; they are taken as final.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "daily_stats", sa.Column("final", sa.Boolean(), server_default=sa.text("true"), nullable=False)
    )


def downgrade() -> None:
    op.drop_column("daily_stats", "final")
