"""Imports every table so that ``Base.metadata`` is complete (migrations, drift test)."""

from habitjobs.accounts import models as accounts_models
from habitjobs.db.base import Base
from habitjobs.habits import models as habits_models
from habitjobs.queue import models as queue_models
from habitjobs.sync import models as sync_models

__all__ = ["Base", "accounts_models", "habits_models", "queue_models", "sync_models"]
