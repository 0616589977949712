"""EventPulse on Dagster: batch recompute, Parquet archive, retention, replay, rollups, checks, alerts.

`orchestration.definitions` assembles everything; `workspace.yaml` (repo root) points Dagster at it.
"""
