"""`habitjobs jobs schema`: the payload contract of every job type, for producers in other languages."""

from __future__ import annotations

from pathlib import Path

import typer

from habitjobs.cli.common import err_console


def register(jobs_app: typer.Typer) -> None:
    @jobs_app.command()
    def schema(
        out: Path | None = typer.Option(
            None, "--out", help="write to this file instead of stdout (docs/job-schemas.json)"
        ),
    ) -> None:
        """Print {job name: {queue, description, attempts, schema}} for every job type (JSON Schema)."""
        from habitjobs.catalog import build_registry
        from habitjobs.queue.schemas import job_schemas, render

        # The catalog alone, not HABITJOBS_EXTRA_JOB_MODULES: the output must not depend on the shell.
        schemas = job_schemas(build_registry())
        text = render(schemas)
        if out is None:
            typer.echo(text, nl=False)
            return
        out.write_text(text, encoding="utf-8")
        err_console.print(f"wrote {len(schemas)} job types to {out}")
