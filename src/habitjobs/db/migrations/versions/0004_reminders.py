"""reminders: local-time reminders and their derived next firing

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_DUE = "enabled AND deleted_at IS NULL AND next_fire_at IS NOT NULL"


def upgrade() -> None:
    op.create_table(
        "reminders",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("habit_id", sa.Uuid(), nullable=True),
        sa.Column("routine_id", sa.Uuid(), nullable=True),
        sa.Column("local_time", sa.Time(), nullable=False),
        sa.Column("days_mask", sa.SmallInteger(), server_default="127", nullable=False),
        sa.Column("timezone", sa.Text(), nullable=True),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("next_fire_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("client_updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("device_id", sa.Text(), server_default="", nullable=False),
        sa.Column("server_version", sa.BigInteger(), server_default="0", nullable=False),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.CheckConstraint(
            "kind <> 'habit' OR habit_id IS NOT NULL", name=op.f("ck_reminders_habit_needs_habit")
        ),
        sa.CheckConstraint(
            "kind IN ('morning_routine', 'evening_routine', 'habit', 'streak_risk')",
            name=op.f("ck_reminders_kind"),
        ),
        sa.CheckConstraint("days_mask BETWEEN 0 AND 127", name=op.f("ck_reminders_days_mask")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_reminders_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reminders")),
    )
    op.create_index("ix_reminders_due", "reminders", ["next_fire_at"], postgresql_where=sa.text(_DUE))
    op.create_index(op.f("ix_reminders_user_id_server_version"), "reminders", ["user_id", "server_version"])


def downgrade() -> None:
    op.drop_index(op.f("ix_reminders_user_id_server_version"), table_name="reminders")
    op.drop_index("ix_reminders_due", table_name="reminders", postgresql_where=sa.text(_DUE))
    op.drop_table("reminders")
