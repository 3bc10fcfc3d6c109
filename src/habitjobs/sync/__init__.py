"""Offline sync: the push/pull protocol and the merge job."""
