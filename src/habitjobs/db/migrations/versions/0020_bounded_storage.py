"""bounded storage: upload payloads in an hourly-partitioned table, an index for delivery retention

Revision ID: 0020
Revises: 0011

- sync_batch_payloads: the mutations of each upload, split from its small status row in sync_batches and
  range-partitioned by the batch's received_at (one partition an hour, named sync_batch_payloads_pYYYYMMDDHH).
  The partitions from the oldest payload still kept (or the current hour) to two days ahead are made
  here; from then on `maintenance.partitions` makes the next ones and drops the expired ones.
- The payloads of uploads received in that range are moved over (older finished uploads no longer need
  theirs); sync_batches.payload is dropped.
- push_deliveries.created_at is indexed: retention deletes finished deliveries by age.
- The synced tables get a partial index on deleted_at (tombstones only): retention finds old tombstones
  without reading the live rows.
"""

from collections.abc import Sequence
from datetime import UTC, timedelta

import sqlalchemy as sa
from alembic import op

from habitjobs.db.partitions import PartitionedTable

revision: str = "0020"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PAYLOADS = PartitionedTable("sync_batch_payloads", "received_at")
_AHEAD = timedelta(days=2)
_SYNCED = ("routines", "habits", "habit_completions", "focus_sessions")


def upgrade() -> None:
    op.create_index(op.f("ix_push_deliveries_created_at"), "push_deliveries", ["created_at"], unique=False)
    for table in _SYNCED:
        op.create_index(
            op.f(f"ix_{table}_deleted_at"),
            table,
            ["deleted_at"],
            unique=False,
            postgresql_where=sa.text("deleted_at IS NOT NULL"),
        )

    op.create_table(
        "sync_batch_payloads",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("payload", sa.dialects.postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sync_batch_payloads_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("batch_id", "received_at", name=op.f("pk_sync_batch_payloads")),
        postgresql_partition_by="RANGE (received_at)",
    )
    op.create_index(op.f("ix_sync_batch_payloads_user_id"), "sync_batch_payloads", ["user_id"], unique=False)

    bind = op.get_bind()
    now = bind.execute(sa.text("SELECT now()")).scalar_one().astimezone(UTC)
    oldest = bind.execute(
        sa.text("SELECT min(received_at) FROM sync_batches WHERE status IN ('queued', 'processing')")
    ).scalar_one()
    start = _PAYLOADS.floor(min(now, oldest) if oldest is not None else now)
    first = start
    while start <= now + _AHEAD:
        end = start + _PAYLOADS.width
        op.execute(
            f'CREATE TABLE "{_PAYLOADS.partition_name(start)}" PARTITION OF sync_batch_payloads '
            f"FOR VALUES FROM ('{start.isoformat()}') TO ('{end.isoformat()}')"
        )
        start = end
    op.execute(
        sa.text(
            "INSERT INTO sync_batch_payloads (batch_id, received_at, user_id, payload) "
            "SELECT batch_id, received_at, user_id, payload FROM sync_batches "
            "WHERE received_at >= :first AND received_at < :last"
        ).bindparams(first=first, last=start)
    )
    op.drop_column("sync_batches", "payload")


def downgrade() -> None:
    op.add_column(
        "sync_batches",
        sa.Column("payload", sa.dialects.postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.execute(
        "UPDATE sync_batches b SET payload = p.payload FROM sync_batch_payloads p "
        "WHERE p.batch_id = b.batch_id AND p.received_at = b.received_at"
    )
    op.execute("UPDATE sync_batches SET payload = '[]'::jsonb WHERE payload IS NULL")
    op.alter_column("sync_batches", "payload", nullable=False)
    op.drop_table("sync_batch_payloads")  # its partitions with it
    op.drop_index(op.f("ix_push_deliveries_created_at"), table_name="push_deliveries")
    for table in _SYNCED:
        op.drop_index(op.f(f"ix_{table}_deleted_at"), table_name=table)
