"""Analyses over the warehouse's aggregates that the notebooks (and anyone else) import: `anomalies`."""
