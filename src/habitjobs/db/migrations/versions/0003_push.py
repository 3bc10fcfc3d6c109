"""push: push deliveries (issue: push notifications)

Revision ID: 0003
Revises: 0002

Reserved in the chain so that domains can be built side by side; filled in by that domain's work.
"""

from collections.abc import Sequence

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
