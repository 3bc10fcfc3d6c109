"""Every job type and every periodic schedule of the system, gathered from the domains."""

from __future__ import annotations

import importlib
from typing import Any

from habitjobs.accounts import jobs as accounts_jobs
from habitjobs.analytics import jobs as analytics_jobs
from habitjobs.config import Settings
from habitjobs.maintenance import jobs as maintenance_jobs
from habitjobs.push import jobs as push_jobs
from habitjobs.queue import jobs as queue_jobs
from habitjobs.queue.registry import JobSpec, Registry, Schedule
from habitjobs.reminders import jobs as reminders_jobs
from habitjobs.sync import jobs as sync_jobs


def all_jobs() -> list[JobSpec[Any]]:
    return [
        *queue_jobs.JOBS,
        *accounts_jobs.JOBS,
        *sync_jobs.JOBS,
        *push_jobs.JOBS,
        *reminders_jobs.JOBS,
        *analytics_jobs.JOBS,
        *maintenance_jobs.JOBS,
    ]


def extra_jobs(settings: Settings) -> list[JobSpec[Any]]:
    specs: list[JobSpec[Any]] = []
    for module_name in filter(None, (m.strip() for m in settings.extra_job_modules.split(","))):
        module = importlib.import_module(module_name)
        specs.extend(module.JOBS)
    return specs


def build_registry(settings: Settings | None = None) -> Registry:
    return Registry([*all_jobs(), *(extra_jobs(settings) if settings else [])])


def build_schedules(settings: Settings) -> list[Schedule]:
    return [
        *queue_jobs.schedules(settings),
        *sync_jobs.schedules(settings),
        *reminders_jobs.schedules(settings),
        *analytics_jobs.schedules(settings),
        *maintenance_jobs.schedules(settings),
    ]
