"""The `eventpulse` command line."""
