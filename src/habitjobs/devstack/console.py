"""What `habitjobs dev` prints: its own notices, each child's output prefixed with the child's name, and
one status line of queue counts — redrawn in place on a terminal, printed when it changes otherwise."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.live import Live
from rich.text import Text

from habitjobs.queue.operations import QueueSummary

_NAME_WIDTH = 8


class DevConsole:
    """Printing never raises: when the terminal goes away (SIGHUP) the stop must still run to the end."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._live: Live | None = None
        self._last_status = ""
        self._gone = False

    def _print(self, text: Text) -> None:
        if self._gone:
            return
        try:
            self.console.print(text, soft_wrap=True, highlight=False)
        except OSError:
            self._gone = True

    def say(self, text: str, style: str = "") -> None:
        self._print(Text(text, style=style))

    def child_line(self, name: str, line: str) -> None:
        self._print(Text.assemble((f"{name:>{_NAME_WIDTH}} │ ", "dim"), line))

    def status(self, line: str) -> None:
        if self._live is not None and not self._gone:
            try:
                self._live.update(Text(line, style="bold cyan"), refresh=True)
            except OSError:
                self._gone = True
        elif line != self._last_status:
            self.say(f"{time.strftime('%H:%M:%S')} {line}")
        self._last_status = line

    @contextmanager
    def live(self) -> Iterator[None]:
        """While inside, the status line stays at the bottom of a terminal."""
        if not self.console.is_terminal:
            yield
            return
        live = Live(Text(""), console=self.console, auto_refresh=False, transient=True)
        try:
            live.start()
        except OSError:
            self._gone = True
        self._live = live
        try:
            yield
        finally:
            self._live = None
            with contextlib.suppress(OSError):
                live.stop()


def queue_status(summaries: list[QueueSummary]) -> str:
    """``queues waiting/active/delayed/failed/done: sync 0/0/0/0/0 · push ...``."""
    parts = []
    for summary in summaries:
        c = summary.counts
        waiting = c.get("waiting", 0) + c.get("prioritized", 0) + c.get("paused", 0)
        numbers = (
            waiting,
            c.get("active", 0),
            c.get("delayed", 0),
            c.get("failed", 0),
            c.get("completed", 0),
        )
        parts.append(
            f"{summary.name} {'/'.join(str(n) for n in numbers)}{' (paused)' if summary.paused else ''}"
        )
    return "queues waiting/active/delayed/failed/done: " + " · ".join(parts)
