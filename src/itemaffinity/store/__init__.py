"""Persistence: the DuckDB store and pickle-free artifacts."""
