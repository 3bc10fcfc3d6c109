"""reminders: reminders and local-time scheduling (issue: scheduling)

Revision ID: 0004
Revises: 0003

Reserved in the chain so that domains can be built side by side; filled in by that domain's work.
"""

from collections.abc import Sequence

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
