"""The one error of the dev stack: its message tells the developer what to change."""

from __future__ import annotations


class DevstackError(RuntimeError):
    """An embedded server or a dev process cannot start (port taken, data directory unusable, ...)."""
