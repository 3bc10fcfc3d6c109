"""OpenTelemetry, when enabled: one trace from the API request through the enqueue and the job to the push
provider call. Spans go to an in-memory exporter."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from habitjobs.accounts.repository import get_or_create_user
from habitjobs.api.app import create_app
from habitjobs.config import Settings
from habitjobs.observability import tracing
from habitjobs.push.fakes import RunningFakes
from habitjobs.queue.names import PUSH, SYNC
from habitjobs.resources import Resources
from tests.fakes.push import add_device, fakes_for_module, notify, settings_for, token
from tests.support.sync import Device
from tests.support.users import ApiUser
from tests.support.workers import drain


@pytest.fixture(scope="module")
def fakes(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningFakes]:
    yield from fakes_for_module(tmp_path_factory)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    tracing.setup("habitjobs-test", exporter=exporter)
    try:
        yield exporter
    finally:
        tracing.shutdown()


@pytest.fixture
async def res(settings: Settings, fakes: RunningFakes) -> AsyncIterator[Resources]:
    resources = Resources.open(settings_for(settings, fakes))
    yield resources
    await resources.aclose()


def named(spans: InMemorySpanExporter, prefix: str) -> list[ReadableSpan]:
    """Our spans (not those libraries make on their own) whose name starts with ``prefix``."""
    return [
        s
        for s in spans.get_finished_spans()
        if s.name.startswith(prefix)
        and s.instrumentation_scope
        and s.instrumentation_scope.name == "habitjobs"
    ]


async def test_one_trace_from_the_upload_request_to_its_merge_job(
    spans: InMemorySpanExporter,
    res: Resources,
    make_user: Callable[[], Awaitable[ApiUser]],
) -> None:
    user = await make_user()
    app = create_app(res.settings, resources=res)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    phone = Device()
    phone.record("habit", "upsert", uuid.uuid4(), 0, {"name": "Read"})
    async with httpx.AsyncClient(transport=transport, base_url="http://api.test") as http:
        answer = await http.post("/v1/sync/push", json=phone.batch(), headers=user.headers)
    assert answer.status_code == 202, answer.text
    await drain(res, queues=[SYNC])
    found = named(spans, "POST /v1/sync/push")
    assert len(found) == 1, [(s.name, s.kind, s.parent) for s in spans.get_finished_spans()]
    [request] = found
    [job] = named(spans, "job sync.apply_batch")
    assert request.attributes is not None
    assert request.attributes["http.route"] == "/v1/sync/push"
    assert request.context is not None
    assert job.context is not None
    assert job.context.trace_id == request.context.trace_id
    # Its parent is a span of that request (the request's own, or one inside it).
    in_request = {
        s.context.span_id
        for s in spans.get_finished_spans()
        if s.context and s.context.trace_id == request.context.trace_id
    }
    assert job.parent is not None
    assert job.parent.span_id in in_request
    enqueues = [
        s for s in named(spans, "enqueue") if s.context and s.context.trace_id == request.context.trace_id
    ]
    assert enqueues


async def test_the_push_provider_call_is_in_the_trace_of_what_started_it(
    spans: InMemorySpanExporter, res: Resources
) -> None:
    async with res.db.transaction() as session:
        user = await get_or_create_user(session, f"trace-{uuid.uuid4().hex[:8]}@example.com")
    await add_device(res, user.id, token())
    with tracing.span("reminder") as started:
        await notify(res, user.id)
    await drain(res, queues=[PUSH])
    trace_id = started.get_span_context().trace_id
    [job] = named(spans, "job push.send_batch")
    [call] = named(spans, "push apns")
    assert job.context is not None
    assert call.context is not None
    assert job.context.trace_id == trace_id
    assert call.context.trace_id == trace_id
    assert call.parent is not None
    assert call.parent.span_id == job.context.span_id


def test_tracing_is_off_by_default_and_then_sets_up_nothing() -> None:
    assert Settings(env="test").otel is False
    import subprocess
    import sys

    probe = (
        "from opentelemetry import trace; from habitjobs.api.app import create_app; "
        "from habitjobs.config import Settings; from habitjobs.observability import tracing; "
        "import habitjobs.queue.runtime, habitjobs.push.gateway; create_app(Settings(env='test')); "
        "print(tracing.ENABLED, type(trace.get_tracer_provider()).__name__)"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "False ProxyTracerProvider"
