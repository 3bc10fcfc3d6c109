"""analytics: streaks and statistics tables (issue: analytics)

Revision ID: 0005
Revises: 0004

Reserved in the chain so that domains can be built side by side; filled in by that domain's work.
"""

from collections.abc import Sequence

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
