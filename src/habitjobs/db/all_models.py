"""Imports every table so that ``Base.metadata`` is complete (migrations, drift test)."""

from habitjobs.accounts import models as accounts_models
from habitjobs.analytics import models as analytics_models
from habitjobs.dashboard import models as dashboard_models
from habitjobs.db.base import Base
from habitjobs.db.partitions import is_partition_of
from habitjobs.habits import models as habits_models
from habitjobs.push import models as push_models
from habitjobs.queue import models as queue_models
from habitjobs.reminders import models as reminders_models
from habitjobs.sync import models as sync_models

# Tables partitioned by time: their partitions are made at run time (maintenance.partitions), not by the
# models, so schema comparisons leave them out.
PARTITIONED_TABLES = [sync_models.PAYLOAD_PARTITIONS]


def include_object(_obj: object, name: str | None, type_: str, _reflected: bool, _compare_to: object) -> bool:
    """Alembic's filter: everything but the partitions of :data:`PARTITIONED_TABLES`."""
    return not (type_ == "table" and name is not None and is_partition_of(PARTITIONED_TABLES, name))


__all__ = [
    "PARTITIONED_TABLES",
    "Base",
    "accounts_models",
    "analytics_models",
    "dashboard_models",
    "habits_models",
    "include_object",
    "push_models",
    "queue_models",
    "reminders_models",
    "sync_models",
]
