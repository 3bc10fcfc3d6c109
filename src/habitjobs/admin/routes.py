"""``/admin/…``: operator endpoints. Every route needs a user with the admin flag (others get 403)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Response, status

from habitjobs.admin.schemas import JobDetailOut, JobPageOut, QueueOut, RetriedOut, WorkerOut
from habitjobs.api.deps import ResourcesDep, require_admin
from habitjobs.queue.operations import MAX_PAGE_SIZE, JobOperations

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(require_admin)])


def _ops(resources: ResourcesDep) -> JobOperations:
    return JobOperations(resources.producer)


@router.get("/queues")
async def list_queues(resources: ResourcesDep) -> list[QueueOut]:
    return [QueueOut.of(q) for q in await _ops(resources).queues()]


@router.get("/workers")
async def list_workers(
    resources: ResourcesDep, queue: str | None = Query(None, description="only this queue's workers")
) -> list[WorkerOut]:
    """Workers connected now, found by their Redis client names (as Node BullMQ and Bull Board do)."""
    return [WorkerOut.of(w) for w in await _ops(resources).workers(queue)]


@router.get("/queues/{queue}/jobs")
async def list_jobs(
    queue: str,
    resources: ResourcesDep,
    state: str = Query(
        "failed", description="waiting, active, delayed, prioritized, completed, failed, paused"
    ),
    page: int = Query(0, ge=0),
    page_size: int = Query(50, ge=1, le=MAX_PAGE_SIZE),
) -> JobPageOut:
    return JobPageOut.of(await _ops(resources).list_jobs(queue, state, page=page, page_size=page_size))


@router.get("/queues/{queue}/jobs/{job_id}")
async def show_job(queue: str, job_id: str, resources: ResourcesDep) -> JobDetailOut:
    return JobDetailOut.of(await _ops(resources).job(queue, job_id))


@router.post("/queues/{queue}/jobs/{job_id}/retry")
async def retry_job(queue: str, job_id: str, resources: ResourcesDep) -> JobDetailOut:
    return JobDetailOut.of(await _ops(resources).retry(queue, job_id))


@router.post("/queues/{queue}/retry-failed")
async def retry_failed(
    queue: str,
    resources: ResourcesDep,
    name: str | None = Query(None, description="only jobs of this name"),
) -> RetriedOut:
    return RetriedOut(queue=queue, retried=await _ops(resources).retry_failed(queue, name=name))


@router.post("/queues/{queue}/jobs/{job_id}/promote")
async def promote_job(queue: str, job_id: str, resources: ResourcesDep) -> JobDetailOut:
    return JobDetailOut.of(await _ops(resources).promote(queue, job_id))


@router.delete("/queues/{queue}/jobs/{job_id}", status_code=status.HTTP_204_NO_CONTENT)
async def remove_job(queue: str, job_id: str, resources: ResourcesDep) -> Response:
    await _ops(resources).remove(queue, job_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/queues/{queue}/pause", status_code=status.HTTP_204_NO_CONTENT)
async def pause_queue(queue: str, resources: ResourcesDep) -> Response:
    await _ops(resources).pause(queue)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/queues/{queue}/resume", status_code=status.HTTP_204_NO_CONTENT)
async def resume_queue(queue: str, resources: ResourcesDep) -> Response:
    await _ops(resources).resume(queue)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
