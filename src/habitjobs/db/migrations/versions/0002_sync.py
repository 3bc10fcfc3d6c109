"""sync: offline sync tables

Revision ID: 0002
Revises: 0001

Adds the sync clients and batches, the dirty marks for statistics and streaks, the tombstone horizon of
``user_sync_state``, and the per-field clocks of the settings entities (routines, habits).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "user_sync_state", sa.Column("purged_through", sa.BigInteger(), server_default="0", nullable=False)
    )
    for table in ("routines", "habits"):
        op.add_column(
            table,
            sa.Column(
                "field_clocks",
                postgresql.JSONB(astext_type=sa.Text()),
                server_default=sa.text("'{}'::jsonb"),
                nullable=False,
            ),
        )
    op.create_table(
        "sync_clients",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("last_mutation_id", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column(
            "last_seen_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sync_clients_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "client_id", name=op.f("pk_sync_clients")),
    )
    op.create_table(
        "sync_batches",
        sa.Column("batch_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("client_id", sa.Text(), nullable=False),
        sa.Column("schema_version", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), server_default="queued", nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column("mutation_count", sa.Integer(), nullable=False),
        sa.Column("first_mutation_id", sa.BigInteger(), nullable=False),
        sa.Column("last_mutation_id", sa.BigInteger(), nullable=False),
        sa.Column("payload", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "result",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('queued', 'processing', 'applied', 'failed')", name=op.f("ck_sync_batches_status")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_sync_batches_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_sync_batches")),
    )
    op.create_index(op.f("ix_sync_batches_received_at"), "sync_batches", ["received_at"], unique=False)
    op.create_index(
        op.f("ix_sync_batches_user_id_client_id_received_at"),
        "sync_batches",
        ["user_id", "client_id", "received_at"],
        unique=False,
    )
    op.create_table(
        "stats_dirty_days",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("local_date", sa.Date(), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_stats_dirty_days_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "local_date", name=op.f("pk_stats_dirty_days")),
    )
    op.create_table(
        "streak_dirty",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("habit_id", sa.Uuid(), nullable=False),
        sa.Column("from_date", sa.Date(), nullable=False),
        sa.Column("marked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["habit_id"], ["habits.id"], name=op.f("fk_streak_dirty_habit_id_habits"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_streak_dirty_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "habit_id", name=op.f("pk_streak_dirty")),
    )


def downgrade() -> None:
    op.drop_table("streak_dirty")
    op.drop_table("stats_dirty_days")
    op.drop_index(op.f("ix_sync_batches_user_id_client_id_received_at"), table_name="sync_batches")
    op.drop_index(op.f("ix_sync_batches_received_at"), table_name="sync_batches")
    op.drop_table("sync_batches")
    op.drop_table("sync_clients")
    for table in ("habits", "routines"):
        op.drop_column(table, "field_clocks")
    op.drop_column("user_sync_state", "purged_through")
