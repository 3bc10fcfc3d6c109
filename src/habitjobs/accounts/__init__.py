"""Users, their devices (push tokens) and authentication."""
