"""Sensors: late events → backfills, consumer lag, alert rules."""
