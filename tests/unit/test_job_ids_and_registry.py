from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from habitjobs.catalog import build_registry
from habitjobs.queue.names import InvalidJobId, check_job_id
from habitjobs.queue.registry import JobSpec, Registry, UnknownJob
from habitjobs.resources import JobContext


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True)
    x: int


class NotFrozen(BaseModel):
    x: int


async def handler(_ctx: JobContext, _p: Any) -> None:
    return None


@pytest.mark.parametrize("job_id", ["a:b", "123", "", "x" * 201])
def test_bad_job_ids_are_refused(job_id: str) -> None:
    with pytest.raises(InvalidJobId):
        check_job_id(job_id)


def test_good_job_id() -> None:
    assert check_job_id("sync-0b6f8a52") == "sync-0b6f8a52"


def test_job_names_must_be_domain_verb() -> None:
    with pytest.raises(ValueError, match=r"domain\.verb"):
        JobSpec("NoDot", "default", Frozen, handler)


def test_unknown_queue_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        JobSpec("a.b", "nope", Frozen, handler)


def test_payload_models_must_be_frozen() -> None:
    with pytest.raises(ValueError, match="frozen"):
        JobSpec("a.b", "default", NotFrozen, handler)


def test_registry_refuses_duplicates_and_reports_unknown_names() -> None:
    spec = JobSpec("a.b", "default", Frozen, handler)
    with pytest.raises(ValueError, match="twice"):
        Registry([spec, spec])
    with pytest.raises(UnknownJob, match=r"no job type named 'x\.y'"):
        Registry([spec]).get("x.y")


def test_the_catalog_builds() -> None:
    registry = build_registry()
    assert registry.get("outbox.relay").queue == "scheduler"
    assert registry.get("accounts.export_data").queue == "default"
