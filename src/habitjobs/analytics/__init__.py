"""Statistics and streaks: daily and weekly roll-ups computed set-based after each user's local midnight."""
