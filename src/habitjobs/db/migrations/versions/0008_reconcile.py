"""reconcile: access paths for the reconciliation, and an export's failure reason

Revision ID: 0008
Revises: 0007

The reconciliation reads, every run, the rows still waiting on a job; these partial indexes hold only
those rows, so a run costs little however many finished rows the tables keep. The outbox gets an index on
``created_at`` to find the job staged in the same transaction as a push delivery.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_data_exports_open",
        "data_exports",
        ["requested_at", "id"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'running')"),
    )
    op.create_index(
        "ix_sync_batches_open",
        "sync_batches",
        ["received_at", "batch_id"],
        unique=False,
        postgresql_where=sa.text("status IN ('queued', 'processing')"),
    )
    op.create_index(op.f("ix_outbox_created_at"), "outbox", ["created_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_created_at"), table_name="outbox")
    op.drop_index("ix_sync_batches_open", table_name="sync_batches")
    op.drop_index("ix_data_exports_open", table_name="data_exports")
