"""export limits: one export in flight per user, expiry, size

Revision ID: 0007
Revises: 0005

data_exports gets ``expires_at``, ``size_bytes``, ``error`` and the status ``expired``; a partial unique
index allows one queued or running export per user. Exports already piling up are reduced to the oldest
one per user (the others fail, saying why), and finished ones expire a week after they finished.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IN_FLIGHT = "status IN ('queued', 'running')"


def upgrade() -> None:
    op.add_column("data_exports", sa.Column("size_bytes", sa.BigInteger(), nullable=True))
    op.add_column("data_exports", sa.Column("error", sa.Text(), nullable=True))
    op.add_column("data_exports", sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
    op.drop_constraint(op.f("ck_data_exports_status"), "data_exports", type_="check")
    op.create_check_constraint(
        op.f("ck_data_exports_status"),
        "data_exports",
        "status IN ('queued', 'running', 'done', 'failed', 'expired')",
    )
    op.execute(
        "UPDATE data_exports SET status = 'failed', finished_at = now(), "
        "error = 'another export of this user was requested earlier; one runs at a time' "
        f"WHERE {_IN_FLIGHT} AND id NOT IN ("
        f"  SELECT DISTINCT ON (user_id) id FROM data_exports WHERE {_IN_FLIGHT} "
        "  ORDER BY user_id, requested_at, id"
        ")"
    )
    op.execute(
        "UPDATE data_exports SET expires_at = coalesce(finished_at, requested_at) + interval '7 days' "
        "WHERE status IN ('done', 'failed')"
    )
    op.create_index(
        "uq_data_exports_user_in_flight",
        "data_exports",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text(_IN_FLIGHT),
    )
    op.create_index(op.f("ix_data_exports_expires_at"), "data_exports", ["expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_data_exports_expires_at"), table_name="data_exports")
    op.drop_index("uq_data_exports_user_in_flight", table_name="data_exports")
    op.execute("DELETE FROM data_exports WHERE status = 'expired'")
    op.drop_constraint(op.f("ck_data_exports_status"), "data_exports", type_="check")
    op.create_check_constraint(
        op.f("ck_data_exports_status"), "data_exports", "status IN ('queued', 'running', 'done', 'failed')"
    )
    op.drop_column("data_exports", "expires_at")
    op.drop_column("data_exports", "error")
    op.drop_column("data_exports", "size_bytes")
