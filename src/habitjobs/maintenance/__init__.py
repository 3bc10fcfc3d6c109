"""Housekeeping that spans domains: retention (deleting what is kept only for a while)."""
