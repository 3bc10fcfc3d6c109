"""`habitjobs jobs …`: the operator's view of the queues, from a terminal (needs only Redis)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Any, TypeVar

import typer
from rich.table import Table

from habitjobs.catalog import build_registry
from habitjobs.cli.common import console, fail, run, settings_or_exit
from habitjobs.errors import HabitjobsError
from habitjobs.queue.operations import JobOperations
from habitjobs.queue.producer import Producer

app = typer.Typer(no_args_is_help=True, help="Inspect queues and jobs; retry failed jobs.")
T = TypeVar("T")
JSON_OPTION = typer.Option(False, "--json", help="machine-readable output")


def _with_ops(action: Callable[[JobOperations], Awaitable[T]]) -> T:
    settings = settings_or_exit()
    settings.require_redis_url()

    async def go() -> T:
        producer = Producer(
            settings, build_registry(settings), command_timeout_s=settings.worker_redis_timeout_s
        )
        try:
            return await action(JobOperations(producer))
        finally:
            await producer.close()

    try:
        return run(go())
    except HabitjobsError as exc:
        fail(exc.message, code=1)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str, indent=2))


def _short(text: str | None, width: int = 70) -> str:
    if not text:
        return ""
    line = text.strip().splitlines()[0]
    return line if len(line) <= width else line[: width - 1] + "…"


@app.command()
def counts(as_json: bool = JSON_OPTION) -> None:
    """Jobs per state in every queue, and what the reconciliation did last."""

    async def both(ops: JobOperations) -> tuple[Any, dict[str, str]]:
        return await ops.queues(), await ops.reconciliation()

    queues, stats = _with_ops(both)
    if as_json:
        _print_json([asdict(q) for q in queues])
        return
    states = list(queues[0].counts) if queues else []
    table = Table("queue", *states, "paused")
    for q in queues:
        table.add_row(q.name, *[str(q.counts[s]) for s in states], "yes" if q.paused else "")
    console.print(table)
    console.print(_reconciliation_line(stats))


@app.command()
def workers(
    queue: str = typer.Option(None, help="only this queue's workers"), as_json: bool = JSON_OPTION
) -> None:
    """Workers connected now, per queue (by their Redis client names, as Bull Board finds them)."""
    found = _with_ops(lambda ops: ops.workers(queue))
    if as_json:
        _print_json([asdict(w) for w in found])
        return
    table = Table("queue", "worker", "address", "connected", "idle")
    for w in found:
        table.add_row(w.queue, w.name, w.addr, f"{w.age_s} s", f"{w.idle_s} s")
    console.print(table)
    if not found:
        console.print("no worker is connected")


_RECONCILE_COUNTS = {
    "requeued": "enqueued again (lost by Redis)",
    "settled": "failures settled late",
    "removed": "removals settled",
    "completed_waiting": "completed with rows still waiting",
}


def _reconciliation_line(stats: dict[str, str]) -> str:
    if not stats.get("runs"):
        return "reconciliation: no run yet"
    last = ", ".join(f"{stats.get('last_' + k, '0')} {label}" for k, label in _RECONCILE_COUNTS.items())
    total = ", ".join(f"{stats.get('total_' + k, '0')} {label}" for k, label in _RECONCILE_COUNTS.items())
    return (
        f"reconciliation: last run {stats.get('last_run_at', '?')} checked {stats.get('last_checked', '0')} "
        f"job(s): {last}; over {stats['runs']} runs: {total}"
    )


@app.command()
def reconciliation(as_json: bool = JSON_OPTION) -> None:
    """What the reconciliation (jobs.reconcile) did: last run and totals."""
    stats = _with_ops(lambda ops: ops.reconciliation())
    if as_json:
        _print_json({k: int(v) if v.isdigit() else v for k, v in sorted(stats.items())})
        return
    console.print(_reconciliation_line(stats))


@app.command("list")
def list_jobs(
    queue: str,
    state: str = typer.Option(
        "failed", help="waiting, active, delayed, prioritized, completed, failed, paused"
    ),
    page: int = typer.Option(0, min=0),
    size: int = typer.Option(20, min=1, max=500),
    as_json: bool = JSON_OPTION,
) -> None:
    """Jobs of QUEUE in one state, newest first."""
    result = _with_ops(lambda ops: ops.list_jobs(queue, state, page=page, page_size=size))
    if as_json:
        _print_json(asdict(result))
        return
    table = Table(
        "id", "name", "attempts", "created", "finished", "reason", title=f"{queue}: {state} ({result.total})"
    )
    for v in result.jobs:
        table.add_row(
            v.id,
            v.name,
            f"{v.attempts_made}/{v.max_attempts}",
            f"{v.created_at:%Y-%m-%d %H:%M:%S}" if v.created_at else "",
            f"{v.finished_at:%Y-%m-%d %H:%M:%S}" if v.finished_at else "",
            _short(v.failed_reason),
        )
    console.print(table)
    shown_to = result.page * result.page_size + len(result.jobs)
    if shown_to < result.total:
        console.print(f"{shown_to} of {result.total}; next: --page {result.page + 1}")


@app.command()
def show(queue: str, job_id: str, as_json: bool = JSON_OPTION) -> None:
    """Everything about one job: data, options, attempts, logs, and every attempt's stack trace."""
    view = _with_ops(lambda ops: ops.job(queue, job_id))
    if as_json:
        _print_json(asdict(view))
        return
    console.print(f"[bold]{view.name}[/] {view.id} in {view.queue}: [bold]{view.state}[/]")
    console.print(f"attempts {view.attempts_made}/{view.max_attempts}, progress {view.progress}")
    for label, value in (
        ("created", view.created_at),
        ("processed", view.processed_at),
        ("finished", view.finished_at),
    ):
        if value:
            console.print(f"{label}: {value.isoformat()}")
    console.print("data:", json.dumps(view.data, default=str))
    console.print("options:", json.dumps(view.options, default=str))
    if view.return_value is not None:
        console.print("result:", json.dumps(view.return_value, default=str))
    if view.failed_reason:
        console.print(f"[red]failed reason:[/] {view.failed_reason}")
    for number, trace in enumerate(view.stacktrace, start=1):
        console.rule(f"stack trace {number} of {len(view.stacktrace)}")
        console.print(trace, markup=False, highlight=False)
    if view.logs:
        console.rule("log")
        for line in view.logs:
            console.print(line, markup=False, highlight=False)


@app.command()
def retry(queue: str, job_id: str, as_json: bool = JSON_OPTION) -> None:
    """Retry one failed job (its attempts start from zero again)."""
    view = _with_ops(lambda ops: ops.retry(queue, job_id))
    if as_json:
        _print_json({"queue": queue, "id": view.id, "state": view.state})
    else:
        console.print(f"{job_id} is {view.state} again")


@app.command("retry-failed")
def retry_failed(
    queue: str,
    name: str = typer.Option(None, help="only jobs with this name"),
    as_json: bool = JSON_OPTION,
) -> None:
    """Retry every failed job of QUEUE (optionally only those named NAME)."""
    count = _with_ops(lambda ops: ops.retry_failed(queue, name=name))
    if as_json:
        _print_json({"queue": queue, "retried": count})
    else:
        console.print(f"retried {count} failed job(s) in {queue}")


@app.command()
def remove(queue: str, job_id: str) -> None:
    """Delete a job (not while a worker holds it)."""
    _with_ops(lambda ops: ops.remove(queue, job_id))
    console.print(f"removed {job_id}")


@app.command()
def promote(queue: str, job_id: str) -> None:
    """Run a delayed job now."""
    view = _with_ops(lambda ops: ops.promote(queue, job_id))
    console.print(f"{job_id} is {view.state}")


@app.command()
def pause(queue: str) -> None:
    """Stop workers from taking QUEUE's jobs (active ones finish)."""
    _with_ops(lambda ops: ops.pause(queue))
    console.print(f"{queue} paused")


@app.command()
def resume(queue: str) -> None:
    """Let workers take QUEUE's jobs again."""
    _with_ops(lambda ops: ops.resume(queue))
    console.print(f"{queue} resumed")
