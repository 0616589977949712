"""Assets, one module per area: aggregates, rollups, archive, retention, replay."""
