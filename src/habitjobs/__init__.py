"""habitjobs: the backend of a habit and focus app."""

__version__ = "0.1.0"
