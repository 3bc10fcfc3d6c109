"""What an operator sees, from real processes after real traffic: the API's and a worker's /metrics, and one
upload's request id followed from the API's log line into its merge job's log lines."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from habitjobs.accounts.auth import mint_token
from habitjobs.accounts.models import Device as DeviceRow
from habitjobs.accounts.repository import get_or_create_user
from habitjobs.clock import SystemClock
from habitjobs.config import Settings
from habitjobs.push import service as push_service
from habitjobs.push.fakes import RunningFakes
from habitjobs.push.schemas import Notification
from habitjobs.queue.names import DEFAULT
from habitjobs.resources import Resources
from tests.fakes.push import eventually, fakes_for_module, settings_for, token
from tests.support.net import free_port, wait_http_ok
from tests.support.sync import Device
from tests.support.workers import ApiProcess, WorkerProcess

pytestmark = pytest.mark.slow

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory)


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes, extra_job_modules="tests.support.testjobs"))
    yield resources
    await resources.aclose()


async def scrape(url: str) -> Samples:
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(url)
    assert answer.status_code == 200
    samples: Samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and wanted <= ls)


def has(samples: Samples, metric: str, **labels: str) -> bool:
    wanted = set(labels.items())
    return any(n == metric and wanted <= ls for (n, ls) in samples)


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in path.read_text(errors="replace").splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


async def test_metrics_and_request_ids_after_real_traffic(
    res: Resources, fakes: RunningFakes, tmp_path: Path
) -> None:
    settings = res.settings
    metrics_port = free_port()
    env = {
        **fakes.env,
        "HABITJOBS_LOG_FORMAT": "json",
        "HABITJOBS_EXTRA_JOB_MODULES": "tests.support.testjobs",
        "HABITJOBS_WORKER_METRICS_PORT": str(metrics_port),
        "HABITJOBS_WORKER_METRICS_HOST": "127.0.0.1",
        "HABITJOBS_METRICS_SAMPLE_EVERY_MS": "200",
    }
    api = ApiProcess(settings, tmp_path / "api.log", free_port(), env=env)
    worker = WorkerProcess(settings, tmp_path / "worker.log", env=env)
    worker_metrics = f"http://127.0.0.1:{metrics_port}/metrics"
    try:
        async with res.db.transaction() as session:
            user = await get_or_create_user(session, f"obs-{uuid.uuid4().hex[:8]}@example.com")
            session.add(
                DeviceRow(
                    id=uuid.uuid4(),
                    user_id=user.id,
                    platform="ios",
                    provider="apns",
                    push_token=token(),
                    apns_env="production",
                )
            )
        bearer = mint_token(settings, user.id, now=SystemClock().now())
        await wait_http_ok(f"{api.base_url}/readyz")
        await worker.wait_started()

        # Uploads, each with its own request id.
        phone = Device()
        request_ids = [f"e2e-upload-{i}-{uuid.uuid4().hex[:6]}" for i in range(2)]
        batches = []
        async with httpx.AsyncClient(
            base_url=api.base_url, headers={"Authorization": f"Bearer {bearer}"}, timeout=10
        ) as http:
            for rid in request_ids:
                phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Read"})
                answer = await http.post("/v1/sync/push", json=phone.batch(), headers={"X-Request-ID": rid})
                assert answer.status_code == 202, answer.text
                assert answer.headers["x-request-id"] == rid
                batches.append(answer.json()["status_url"])

            async def applied() -> bool:
                states = [(await http.get(url)).json()["status"] for url in batches]
                return states == ["applied"] * len(batches)

            await eventually(applied, timeout_s=30)
            assert (await http.get("/v1/sync/batches/not-a-uuid")).status_code == 422

        # A push batch (its job staged in the outbox) and a job that fails for good.
        async with res.db.transaction() as session:
            deliveries = await push_service.create_deliveries(
                session,
                user.id,
                Notification.morning_routine(uuid.uuid4(), "Sunrise"),
                dedupe_key=f"obs:{uuid.uuid4()}",
                not_after=res.clock.now() + timedelta(hours=1),
            )
            await push_service.stage_send(session, res.outbox, deliveries)
            await res.outbox.add(
                session, "test.effect", {"key": "boom", "permanent": True}, job_id="obs-fail"
            )
        assert len(deliveries) == 1

        async def worker_saw_everything() -> bool:
            s = await scrape(worker_metrics)
            return (
                value(s, "habitjobs_jobs_failed_total", name="test.effect", final="true") >= 1
                and value(s, "habitjobs_push_deliveries_total", provider="apns", outcome="sent") >= 1
                and value(s, "habitjobs_jobs_completed_total", name="sync.apply_batch") >= 2
                and value(s, "habitjobs_queue_jobs", queue=DEFAULT, state="failed") >= 1
            )

        await eventually(worker_saw_everything, timeout_s=30)
        w = await scrape(worker_metrics)
        assert value(w, "habitjobs_jobs_completed_total", queue="sync", name="sync.apply_batch") == 2
        assert value(w, "habitjobs_job_duration_seconds_count", name="sync.apply_batch") == 2
        assert value(w, "habitjobs_job_duration_seconds_count", name="push.send_batch") >= 1
        assert value(w, "habitjobs_jobs_completed_total", name="push.send_batch") >= 1
        assert value(w, "habitjobs_jobs_failed_total", queue=DEFAULT, name="test.effect", final="true") == 1
        assert value(w, "habitjobs_jobs_retried_total", name="test.effect") == 0
        assert value(w, "habitjobs_push_deliveries_total", provider="apns", outcome="sent") == 1
        assert value(w, "habitjobs_sync_mutations_total", outcome="applied") == 2
        assert value(w, "habitjobs_sync_merge_lag_seconds_count") == 2
        assert value(w, "habitjobs_worker_ready") == 1
        for queue in ("sync", "push", DEFAULT):
            assert has(w, "habitjobs_queue_oldest_waiting_seconds", queue=queue), queue
            assert has(w, "habitjobs_queue_jobs", queue=queue, state="waiting"), queue
        assert has(w, "habitjobs_outbox_backlog")

        a = await scrape(f"{api.base_url}/metrics")
        assert (
            value(a, "habitjobs_http_requests_total", method="POST", route="/v1/sync/push", status="202") == 2
        )
        assert (
            value(a, "habitjobs_http_requests_total", route="/v1/sync/batches/{batch_id}", status="422") == 1
        )
        assert value(a, "habitjobs_http_request_duration_seconds_count", route="/v1/sync/push") == 2
        assert has(a, "habitjobs_http_requests_in_flight")

        # The first upload's request id: in the API's log line for it, then in its merge job's lines.
        rid = request_ids[0]
        api_lines = [e for e in json_lines(api.log_path) if e.get("request_id") == rid]
        assert any("/v1/sync/push" in e["msg"] and e.get("user_id") == str(user.id) for e in api_lines), (
            api_lines
        )
        job_lines = [e for e in json_lines(worker.log_path) if e.get("request_id") == rid]
        assert job_lines, worker.output()[-3000:]
        assert all(e["job_name"] == "sync.apply_batch" for e in job_lines)
        assert any("applied" in e["msg"] for e in job_lines)
        # Nobody's e-mail in any line.
        assert user.email
        assert user.email not in api.output() + worker.output()
    finally:
        api.stop()
        worker.kill()
