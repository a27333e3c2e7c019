"""Numbered SQL migrations of the SQLite schema."""
