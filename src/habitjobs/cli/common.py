"""What every subcommand needs: settings loaded once, with configuration errors printed plainly."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from habitjobs.config import ConfigError, Settings, load_settings
from habitjobs.logs import configure_logging
from habitjobs.observability import metrics

T = TypeVar("T")
# Output that is not a terminal (a pipe, a file, a script) is not cut to 80 columns: job ids and names
# stay whole, so they can be copied or parsed.
console = Console() if sys.stdout.isatty() else Console(width=100_000)
err_console = Console(stderr=True)


def fail(message: str, code: int = 2) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


def settings_or_exit(**overrides: Any) -> Settings:
    try:
        settings = load_settings(**overrides)
    except (ConfigError, ValidationError) as exc:
        fail(str(exc))
    configure_logging(settings.log_level, json_lines=settings.json_logs)
    metrics.set_enabled(settings.metrics)
    if settings.otel:
        from habitjobs.observability import tracing

        try:
            tracing.setup("habitjobs")
        except tracing.TracingUnavailable as exc:
            fail(str(exc))
    return settings


def run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coro)
    except ConfigError as exc:
        fail(str(exc))
