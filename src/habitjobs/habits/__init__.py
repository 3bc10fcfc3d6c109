"""Routines, habits, completions, focus sessions, and the streak rules."""
