"""Reminders at the user's local time: schedules, the minute tick, streak-at-risk alerts."""
