"""Imports every table so that ``Base.metadata`` is complete (migrations, drift test)."""

from habitjobs.accounts import models as accounts_models
from habitjobs.analytics import models as analytics_models
from habitjobs.dashboard import models as dashboard_models
from habitjobs.db.base import Base
from habitjobs.habits import models as habits_models
from habitjobs.push import models as push_models
from habitjobs.queue import models as queue_models
from habitjobs.reminders import models as reminders_models
from habitjobs.sync import models as sync_models

__all__ = [
    "Base",
    "accounts_models",
    "analytics_models",
    "dashboard_models",
    "habits_models",
    "push_models",
    "queue_models",
    "reminders_models",
    "sync_models",
]
