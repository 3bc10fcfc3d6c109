"""`habitjobs api` and `habitjobs worker`: the two long-running processes."""

from __future__ import annotations

import typer

from habitjobs.cli.common import run, settings_or_exit
from habitjobs.config import Settings


async def run_worker(settings: Settings, queues: list[str] | None, concurrency: int | None) -> int:
    import asyncio

    from habitjobs.catalog import build_schedules
    from habitjobs.observability.exporter import serve_metrics
    from habitjobs.queue.runtime import WorkerRuntime
    from habitjobs.queue.sampler import sample_forever
    from habitjobs.resources import Resources

    resources = Resources.open(settings, application_name="habitjobs-worker")
    exporter = None
    sampler = None
    try:
        runtime = WorkerRuntime(
            resources, queues=queues or None, concurrency=concurrency, schedules=build_schedules(settings)
        )
        if settings.metrics and settings.worker_metrics_port:
            exporter = serve_metrics(settings.worker_metrics_host, settings.worker_metrics_port)
            sampler = asyncio.create_task(
                sample_forever(resources, runtime.queues, lambda: bool(runtime.workers)),
                name="metrics-sampler",
            )
        return await runtime.serve()
    finally:
        if sampler is not None:
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        if exporter is not None:
            exporter.close()
        await resources.aclose()


def register(app: typer.Typer) -> None:
    @app.command()
    def api(
        host: str = typer.Option(None, help="default: HABITJOBS_API_HOST"),
        port: int = typer.Option(None, help="default: HABITJOBS_API_PORT"),
        workers: int = typer.Option(
            None, min=1, help="processes serving the API, e.g. one per core (default: HABITJOBS_API_WORKERS)"
        ),
    ) -> None:
        """Serve the HTTP API (uvicorn, with time limits for reading requests: api/server.py)."""
        from habitjobs.api.app import create_app
        from habitjobs.api.server import serve

        settings = settings_or_exit()
        settings.require_database_url()
        settings.require_redis_url()
        serve(
            settings,
            lambda: create_app(settings),
            host=host or settings.api_host,
            port=port or settings.api_port,
            workers=workers or settings.api_workers,
        )

    @app.command()
    def worker(
        queue: list[str] = typer.Option(
            None, "--queue", "-q", help="a queue to serve (repeatable; default: all)"
        ),
        concurrency: int = typer.Option(
            None, min=1, help="jobs in parallel per queue (default: per-queue setting)"
        ),
    ) -> None:
        """Process background jobs until SIGTERM/SIGINT (active jobs finish first)."""
        settings = settings_or_exit()
        settings.require_database_url()
        settings.require_redis_url()
        raise typer.Exit(run(run_worker(settings, queue, concurrency)))
