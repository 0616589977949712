"""Bulk import of event files (NDJSON, CSV, Parquet) onto the events topic, resumable per file.

Used by `eventpulse import` (cli/), ``POST /api/import`` (gateway/) and the Dagster import asset
(orchestration/). See ``docs/import.md``.
"""
