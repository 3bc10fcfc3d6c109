"""PostgreSQL access: the engine, the transaction scope and the declarative base."""

from habitjobs.db.base import Base
from habitjobs.db.engine import Database, after_commit, normalize_url

__all__ = ["Base", "Database", "after_commit", "normalize_url"]
