"""Caps on what one user may own: their names, their settings, and the error a create over one gets.

Counted where rows are written, under a per-user lock held until commit (the user's sync version row
for routines, habits and reminders, which every API write and every merge takes first; the user's row
for devices), so two concurrent creates at the cap cannot both pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from habitjobs.config import Settings
from habitjobs.errors import LimitReached

# The code a sync mutation is rejected with when it would create a row over a cap.
LIMIT_REACHED = LimitReached.code


@dataclass(frozen=True)
class Cap:
    name: str  # what is counted, plural ("habits")
    setting: str  # the Settings field holding the maximum

    def of(self, settings: Settings) -> int:
        value: int = getattr(settings, self.setting)
        return value

    def message(self, maximum: int) -> str:
        return (
            f"you have reached the limit of {maximum} {self.name} "
            f"(HABITJOBS_{self.setting.upper()}); delete one first"
        )

    def check(self, count: int, maximum: int) -> None:
        """Raise :class:`LimitReached` when ``count`` rows already use up the cap."""
        if count >= maximum:
            raise LimitReached(self.message(maximum), limit=self.name, max=maximum)


DEVICES = Cap("devices", "max_devices_per_user")
HABITS = Cap("habits", "max_habits_per_user")
ROUTINES = Cap("routines", "max_routines_per_user")
REMINDERS = Cap("reminders", "max_reminders_per_user")

# The sync entities whose rows are capped, by entity name.
BY_ENTITY = {"routine": ROUTINES, "habit": HABITS, "reminder": REMINDERS}


def entity_caps(settings: Settings) -> dict[str, int]:
    """Maximum live rows per user for each capped sync entity."""
    return {entity: cap.of(settings) for entity, cap in BY_ENTITY.items()}
