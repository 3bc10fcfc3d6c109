"""OpenTelemetry traces, optional: ``pip install 'habitjobs[otel]'`` and ``HABITJOBS_OTEL=true``.

One trace spans an API request, the enqueue of the jobs it starts (the job's data carries the trace
context beside the request id), the job's run and the push provider calls it makes. Off by default, and
then free: nothing of OpenTelemetry is imported, and every call site checks :data:`ENABLED` first."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

ENABLED = False
# The key under which a job's data carries the trace context (W3C traceparent), beside the request id.
JOB_DATA_KEY = "_trace"
_tracer: Any = None


class TracingUnavailable(RuntimeError):
    pass


def setup(service: str, *, exporter: Any = None) -> None:
    """Start tracing for this process. ``exporter``: where spans go (default: OTLP over HTTP, configured
    by the standard ``OTEL_EXPORTER_OTLP_*`` variables)."""
    global ENABLED, _tracer
    try:
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
    except ImportError as exc:
        raise TracingUnavailable(
            "HABITJOBS_OTEL=true needs the otel extra: pip install 'habitjobs[otel]'"
        ) from exc
    provider = TracerProvider(
        resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", service)})
    )
    if exporter is None:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found]
                OTLPSpanExporter,
            )
        except ImportError as exc:
            raise TracingUnavailable(
                "HABITJOBS_OTEL=true needs the OTLP exporter: pip install 'habitjobs[otel]'"
            ) from exc
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _tracer = provider.get_tracer("habitjobs")
    ENABLED = True


def shutdown() -> None:
    global ENABLED, _tracer
    if _tracer is not None:
        from opentelemetry import trace

        provider: Any = trace.get_tracer_provider()
        if hasattr(provider, "shutdown"):
            provider.shutdown()
    ENABLED, _tracer = False, None


@contextmanager
def span(
    name: str,
    *,
    kind: str = "INTERNAL",
    parent: Mapping[str, str] | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> Iterator[Any]:
    """A span (call only when :data:`ENABLED`); ``parent``: a carrier (headers, job data) to continue."""
    from opentelemetry import propagate, trace

    context = propagate.extract(dict(parent)) if parent else None
    with _tracer.start_as_current_span(
        name, context=context, kind=getattr(trace.SpanKind, kind), attributes=dict(attributes or {})
    ) as current:
        yield current


def carrier() -> dict[str, str]:
    """The current trace context, to store in a job's data (call only when :data:`ENABLED`)."""
    from opentelemetry import propagate

    out: dict[str, str] = {}
    propagate.inject(out)
    return out
