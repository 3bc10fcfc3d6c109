"""accounts: sign-in identities, account locking and deletion requests

Revision ID: 0010
Revises: 0008

- user_identities: (issuer, subject) → user. Existing users get their `habitjobs token` identity
  (issuer ``local``, subject = the lower-cased e-mail), which is how the CLI finds them from now on.
- users.email becomes optional contact data (not unique: two providers may report the same address
  without that joining their accounts); users.locked_at marks an account whose deletion was requested.
- account_deletions: the requests, carried out by the ``accounts.delete_user`` job.
- analytics_runs.last_user_id references users (SET NULL), so deleting a user leaves no copy of its id.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LIVE = "status IN ('scheduled', 'running')"


def upgrade() -> None:
    op.create_table(
        "user_identities",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("issuer", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("email", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_identities_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_identities")),
        sa.UniqueConstraint("issuer", "subject", name=op.f("uq_user_identities_issuer_subject")),
    )
    op.create_index(op.f("ix_user_identities_user_id"), "user_identities", ["user_id"], unique=False)
    op.execute(
        "INSERT INTO user_identities (id, issuer, subject, user_id, email, created_at) "
        "SELECT gen_random_uuid(), 'local', lower(email), id, email, created_at FROM users"
    )

    op.drop_index("uq_users_email_lower", table_name="users")
    op.create_index("ix_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=False)
    op.alter_column("users", "email", existing_type=sa.Text(), nullable=True)
    op.add_column("users", sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True))

    op.create_table(
        "account_deletions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=True),
        sa.Column("status", sa.Text(), server_default="scheduled", nullable=False),
        sa.Column("job_id", sa.Text(), nullable=False),
        sa.Column(
            "requested_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("rows_deleted", sa.BigInteger(), server_default="0", nullable=False),
        sa.CheckConstraint(
            "status IN ('scheduled', 'running', 'done', 'cancelled')",
            name=op.f("ck_account_deletions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_account_deletions_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_deletions")),
    )
    op.create_index(op.f("ix_account_deletions_user_id"), "account_deletions", ["user_id"], unique=False)
    op.create_index(
        "uq_account_deletions_live_user",
        "account_deletions",
        ["user_id"],
        unique=True,
        postgresql_where=sa.text(_LIVE),
    )

    op.execute(
        "UPDATE analytics_runs r SET last_user_id = NULL WHERE last_user_id IS NOT NULL "
        "AND NOT EXISTS (SELECT 1 FROM users u WHERE u.id = r.last_user_id)"
    )
    op.create_foreign_key(
        op.f("fk_analytics_runs_last_user_id_users"),
        "analytics_runs",
        "users",
        ["last_user_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.create_index(op.f("ix_analytics_runs_last_user_id"), "analytics_runs", ["last_user_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_analytics_runs_last_user_id"), table_name="analytics_runs")
    op.drop_constraint(op.f("fk_analytics_runs_last_user_id_users"), "analytics_runs", type_="foreignkey")
    op.drop_index("uq_account_deletions_live_user", table_name="account_deletions")
    op.drop_index(op.f("ix_account_deletions_user_id"), table_name="account_deletions")
    op.drop_table("account_deletions")
    op.drop_column("users", "locked_at")
    # Back to one user per e-mail: users without one, or sharing one with an older user, get a
    # placeholder address that names them.
    op.execute(
        "UPDATE users u SET email = u.id || '@no-email.invalid' WHERE u.email IS NULL OR EXISTS ("
        "SELECT 1 FROM users o WHERE lower(o.email) = lower(u.email) "
        "AND (o.created_at, o.id) < (u.created_at, u.id))"
    )
    op.alter_column("users", "email", existing_type=sa.Text(), nullable=False)
    op.drop_index("ix_users_email_lower", table_name="users")
    op.create_index("uq_users_email_lower", "users", [sa.literal_column("lower(email)")], unique=True)
    op.drop_index(op.f("ix_user_identities_user_id"), table_name="user_identities")
    op.drop_table("user_identities")
